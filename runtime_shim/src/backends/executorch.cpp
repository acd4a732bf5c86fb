// ExecuTorch backend: `.pte` programs run with the Module API of the libraries in the executorch wheel.
//
// Kernel and delegate libraries register themselves at load time, so they are linked with
// --no-as-needed (see CMakeLists.txt). No exception or abort crosses into C: every failure becomes a
// status with a message.
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <executorch/extension/data_loader/buffer_data_loader.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include "restnet_shim_executorch.h"

namespace {

using executorch::aten::ScalarType;
using executorch::aten::SizesType;
using executorch::extension::BufferDataLoader;
using executorch::extension::Module;
using executorch::runtime::Error;
using executorch::runtime::EValue;

// An open program: one Module over the core's verified bytes, which outlive it (freed after close).
struct Program {
    std::unique_ptr<Module> module;
};

// A loaded entry point: a method of its program's Module.
struct Entry {
    Program *program;
    std::string method;
    std::vector<SizesType> input_sizes;
};

rs_status fail(rs_error *err, const std::string &message) {
    return rs_error_set(err, RS_ERR_BACKEND, "%s", message.c_str());
}

std::string describe(Error error) { return "ExecuTorch error " + std::to_string(static_cast<int>(error)); }

rs_status open(void *, const void *data, size_t size, const char *file, void **out, rs_error *err) {
    try {
        auto program = std::make_unique<Program>();
        program->module = std::make_unique<Module>(std::make_unique<BufferDataLoader>(data, size));
        Error error = program->module->load();
        if (error != Error::Ok) {
            return fail(err, std::string(file) + ": loading the program: " + describe(error));
        }
        *out = program.release();
        return RS_OK;
    } catch (const std::exception &e) {
        return fail(err, std::string(file) + ": " + e.what());
    }
}

rs_status load(void *handle, const rs_artifact *artifact, void **out, rs_error *err) {
    auto *program = static_cast<Program *>(handle);
    const std::string id = artifact->id;
    try {
        auto entry = std::make_unique<Entry>();
        entry->program = program;
        entry->method = artifact->entry_point;
        Error error = program->module->load_method(entry->method);
        if (error != Error::Ok) {
            return fail(err, id + ": loading method " + entry->method + ": " + describe(error));
        }
        auto meta = program->module->method_meta(entry->method);
        if (!meta.ok() || meta->num_inputs() != 1 || meta->num_outputs() != 1) {
            program->module->unload_method(entry->method);
            return fail(err, id + ": expected one input and one output in " + entry->method);
        }
        auto input = meta->input_tensor_meta(0);
        if (!input.ok() || input->scalar_type() != ScalarType::Float) {
            program->module->unload_method(entry->method);
            return fail(err, id + ": the input is not a float32 tensor");
        }
        for (int32_t size : input->sizes()) {
            entry->input_sizes.push_back(static_cast<SizesType>(size));
        }
        *out = entry.release();
        return RS_OK;
    } catch (const std::exception &e) {
        return fail(err, id + ": " + e.what());
    }
}

rs_status run(void *handle, const void *input, size_t input_bytes, void *output, size_t output_bytes,
              rs_error *err) {
    auto *entry = static_cast<Entry *>(handle);
    try {
        size_t expected = sizeof(float);
        for (SizesType size : entry->input_sizes) {
            expected *= static_cast<size_t>(size);
        }
        if (expected != input_bytes) {
            return fail(err, "ExecuTorch input has " + std::to_string(expected) + " bytes, the bundle index implies " +
                                 std::to_string(input_bytes));
        }
        auto tensor = executorch::extension::from_blob(const_cast<void *>(input), entry->input_sizes);
        auto result = entry->program->module->execute(entry->method, EValue(*tensor));
        if (!result.ok()) {
            return fail(err, "running " + entry->method + ": " + describe(result.error()));
        }
        if (result->empty() || !(*result)[0].isTensor()) {
            return fail(err, entry->method + " returned no tensor");
        }
        const auto &logits = (*result)[0].toTensor();
        if (logits.scalar_type() != ScalarType::Float || logits.nbytes() != output_bytes) {
            return fail(err, "ExecuTorch output has " + std::to_string(logits.nbytes()) +
                                 " bytes, the bundle index implies " + std::to_string(output_bytes) + " of float32");
        }
        std::memcpy(output, logits.const_data_ptr<float>(), output_bytes);
        return RS_OK;
    } catch (const std::exception &e) {
        return fail(err, e.what());
    }
}

// Two entries of one program never name the same method: the core loads each artifact at most once.
void unload(void *handle) {
    auto *entry = static_cast<Entry *>(handle);
    entry->program->module->unload_method(entry->method);
    delete entry;
}

void close(void *handle) { delete static_cast<Program *>(handle); }

}  // namespace

extern "C" rs_status rs_executorch_backend_open(rs_backend *out, rs_error *err) {
    if (out == nullptr) {
        return fail(err, "rs_executorch_backend_open: out is required");
    }
    *out = rs_backend{"executorch", nullptr, open, load, run, unload, close};
    return RS_OK;
}

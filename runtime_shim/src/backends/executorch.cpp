// ExecuTorch backend: `.pte` programs run with the Module API of the libraries in the executorch wheel.
//
// Kernel and delegate libraries register themselves at load time, so they are linked with
// --no-as-needed (see CMakeLists.txt). No exception or abort crosses into C: every failure becomes a
// status with a message.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <executorch/extension/data_loader/buffer_data_loader.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/backend/backend_options_map.h>
#include <executorch/runtime/backend/options.h>

#include "restnet_shim_executorch.h"

// The process's thread pool, from libexecutorch_threadpool (whose header the wheel does not ship): declared here
// as that library defines it, with default visibility so the references bind to its exported symbols.
namespace executorch::extension::threadpool {
class __attribute__((visibility("default"))) ThreadPool {
  public:
    size_t get_thread_count() const;
    // Replaces the pool's threads; anything holding the old pool (a loaded XNNPACK method) is left dangling.
    bool _unsafe_reset_threadpool(uint32_t num_threads);
};
__attribute__((visibility("default"))) ThreadPool *get_threadpool();
}  // namespace executorch::extension::threadpool

namespace {

using executorch::aten::ScalarType;
using executorch::aten::SizesType;
using executorch::extension::BufferDataLoader;
using executorch::extension::Module;
using executorch::runtime::BackendOptions;
using executorch::runtime::Error;
using executorch::runtime::EValue;
using executorch::runtime::LoadBackendOptionsMap;

using SharedProgram = decltype(std::declval<const Module &>().program());

// Methods of this library loaded (or loading) in the process, and the lock under which the thread pool is
// resized: only while the count is 0, so no loaded method is left on a freed pool.
std::mutex pool_lock;
size_t methods_loaded = 0;

// One loaded method's hold on the thread pool, for the method's lifetime: the first hold (none before it) sizes
// the pool to `threads` (0: as it is; std::runtime_error if the pool refuses); later ones take it as it is.
class PoolHold {
  public:
    explicit PoolHold(int threads) {
        std::lock_guard<std::mutex> guard(pool_lock);
        if (threads > 0 && methods_loaded == 0) {
            auto *pool = executorch::extension::threadpool::get_threadpool();  // nullptr if cpuinfo failed
            if (pool != nullptr && pool->get_thread_count() != static_cast<size_t>(threads) &&
                !pool->_unsafe_reset_threadpool(static_cast<uint32_t>(threads))) {
                throw std::runtime_error("ExecuTorch refused to resize its thread pool to " +
                                         std::to_string(threads) + " threads");
            }
        }
        methods_loaded++;
    }
    ~PoolHold() {
        std::lock_guard<std::mutex> guard(pool_lock);
        methods_loaded--;
    }
    PoolHold(const PoolHold &) = delete;
    PoolHold &operator=(const PoolHold &) = delete;
};

// An open program: parsed once by a Module that owns the loader over the core's verified bytes (which outlive
// it: freed after close) and never loads a method itself. Its constants are views of those bytes, so XNNPACK's
// weight cache may drop its own references to them after packing (ExecuTorch 1.5.1 does, for every constant).
struct Program {
    std::unique_ptr<Module> loader;
    SharedProgram parsed;
    bool share_packed_weights;
    int threads;  // the backend's, 0..rs_usable_cpus()
    ~Program();
};

// ExecuTorch's XNNPACK backend keeps one weight cache for the process, keyed by weight names alone, while the
// compiler checks one file at a time: two programs sharing it could run with each other's packings. So at most
// one open program shares (claimed at open, released when it is destroyed); another packs its own meanwhile.
std::atomic<const Program *> sharing_program{nullptr};

Program::~Program() {
    const Program *self = this;
    sharing_program.compare_exchange_strong(self, nullptr);
}

// A loaded entry point: a method in a Module of its own over the shared parsed program, so that unloading frees
// everything the method allocated (a Module's allocator frees only when the Module goes).
struct Entry {
    explicit Entry(int threads) : pool(threads) {}
    PoolHold pool;  // first member: released after the module, when the method is gone
    std::unique_ptr<Module> module;
    std::string method;
    std::vector<SizesType> input_sizes;
};

rs_status fail(rs_error *err, const std::string &message, rs_status status = RS_ERR_BACKEND) {
    return rs_error_set(err, status, "%s", message.c_str());
}

std::string describe(Error error) { return "ExecuTorch error " + std::to_string(static_cast<int>(error)); }

// Whether `error` says a resource ran out (memory, in the runtime or its delegate, or another resource): a
// later attempt may succeed, so the core retries it.
bool exhausted(Error error) {
    return error == Error::MemoryAllocationFailed || error == Error::DelegateMemoryAllocationFailed ||
           error == Error::OutOfResources;
}

// An ExecuTorch failure: for want of resources (retryable, RS_ERR_NO_MEMORY) or a refusal (RS_ERR_BACKEND).
rs_status fail(rs_error *err, const std::string &message, Error error) {
    return fail(err, message + ": " + describe(error), exhausted(error) ? RS_ERR_NO_MEMORY : RS_ERR_BACKEND);
}

rs_status out_of_memory(rs_error *err, const std::string &what) {
    return fail(err, what + ": out of memory", RS_ERR_NO_MEMORY);
}

rs_status open(void *context, const void *data, size_t size, const rs_artifact *artifact, void **out,
               rs_error *err) {
    const char *file = artifact->file;
    try {
        const auto *options = static_cast<const rs_executorch_options *>(context);
        auto program = std::make_unique<Program>();
        program->threads = options->threads;
        const Program *none = nullptr;
        program->share_packed_weights =
            rs_packing_shared(options->packing, artifact) != 0 &&
            sharing_program.compare_exchange_strong(none, program.get());
        program->loader = std::make_unique<Module>(std::make_unique<BufferDataLoader>(data, size));
        Error error = program->loader->load();
        if (error != Error::Ok) {
            return fail(err, std::string(file) + ": loading the program", error);
        }
        program->parsed = program->loader->program();
        *out = program.release();
        return RS_OK;
    } catch (const std::bad_alloc &) {
        return out_of_memory(err, file);
    } catch (const std::exception &e) {
        return fail(err, std::string(file) + ": " + e.what());
    }
}

rs_status load(void *handle, const rs_artifact *artifact, void **out, rs_error *err) {
    auto *program = static_cast<Program *>(handle);
    const std::string id = artifact->id;
    try {
        auto entry = std::make_unique<Entry>(program->threads);
        entry->module = std::make_unique<Module>(program->parsed);
        entry->method = artifact->entry_point;
        BackendOptions<1> xnnpack;
        LoadBackendOptionsMap options;
        Error error = xnnpack.set_option("weight_cache_enabled", program->share_packed_weights);
        if (error == Error::Ok) {
            error = options.set_options("XnnpackBackend", xnnpack.view());
        }
        if (error == Error::Ok) {
            error = entry->module->load_method(entry->method, nullptr, nullptr, &options);
        }
        if (error != Error::Ok) {
            return fail(err, id + ": loading method " + entry->method, error);
        }
        auto meta = entry->module->method_meta(entry->method);
        if (!meta.ok() || meta->num_inputs() != 1 || meta->num_outputs() != 1) {
            return fail(err, id + ": expected one input and one output in " + entry->method);
        }
        auto input = meta->input_tensor_meta(0);
        if (!input.ok() || input->scalar_type() != ScalarType::Float) {
            return fail(err, id + ": the input is not a float32 tensor");
        }
        for (int32_t size : input->sizes()) {
            entry->input_sizes.push_back(static_cast<SizesType>(size));
        }
        *out = entry.release();
        return RS_OK;
    } catch (const std::bad_alloc &) {
        return out_of_memory(err, id);
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
        auto result = entry->module->execute(entry->method, EValue(*tensor));
        if (!result.ok()) {
            return fail(err, "running " + entry->method, result.error());
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

void unload(void *handle) { delete static_cast<Entry *>(handle); }

void close(void *handle) { delete static_cast<Program *>(handle); }

void release(void *context) { delete static_cast<rs_executorch_options *>(context); }

}  // namespace

extern "C" rs_status rs_executorch_backend_open_with(const rs_executorch_options *options, rs_backend *out,
                                                     rs_error *err) {
    if (out == nullptr) {
        return fail(err, "rs_executorch_backend_open_with: out is required", RS_ERR_ARGUMENT);
    }
    rs_executorch_options chosen = options != nullptr ? *options : rs_executorch_options{RS_PACKING_AS_INDEXED, 0};
    if (chosen.threads < 0) {
        return fail(err, "rs_executorch_backend_open_with: threads " + std::to_string(chosen.threads) +
                             ": expected 0 (the pool as it is) or more", RS_ERR_ARGUMENT);
    }
    if (rs_packing_valid(chosen.packing) == 0) {
        return fail(err, "rs_executorch_backend_open_with: packing " + std::to_string(static_cast<int>(chosen.packing)) +
                             " is not an rs_packing", RS_ERR_ARGUMENT);
    }
    chosen.threads = std::min(chosen.threads, rs_usable_cpus());
    auto *context = new (std::nothrow) rs_executorch_options(chosen);
    if (context == nullptr) {
        return out_of_memory(err, "rs_executorch_backend_open_with");
    }
    *out = rs_backend{"executorch", context, open, load, run, unload, close, release};
    return RS_OK;
}

extern "C" rs_status rs_executorch_backend_open(rs_backend *out, rs_error *err) {
    return rs_executorch_backend_open_with(nullptr, out, err);
}

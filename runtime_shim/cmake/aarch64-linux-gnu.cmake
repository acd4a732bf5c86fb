# Cross-compiling for 64-bit Arm Linux boards with Cortex-A53 cores (Raspberry Pi 3/Zero 2, many SoCs).
#   cmake -S runtime_shim -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=runtime_shim/cmake/aarch64-linux-gnu.cmake
# Debian: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static. Tests run under
# qemu-aarch64-static through CMAKE_CROSSCOMPILING_EMULATOR (binfmt need not be registered), emulating a
# Cortex-A53: with qemu 7.2's default `max` CPU, XNNPACK's int8 kernels (LiteRT and ExecuTorch) give wrong logits.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(RS_CROSS_PREFIX aarch64-linux-gnu- CACHE STRING "prefix of the cross toolchain's executables")
set(RS_CROSS_SYSROOT /usr/aarch64-linux-gnu CACHE PATH "target libraries (for the emulator)")
set(CMAKE_C_COMPILER ${RS_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${RS_CROSS_PREFIX}g++)
set(CMAKE_C_FLAGS_INIT "-mcpu=cortex-a53")
set(CMAKE_CXX_FLAGS_INIT "-mcpu=cortex-a53")
set(CMAKE_FIND_ROOT_PATH ${RS_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -cpu cortex-a53 -L ${RS_CROSS_SYSROOT})

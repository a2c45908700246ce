# Every third-party library comes from Debian packages (scripts/setup.sh installs them).
find_package(Threads REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(spdlog REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(cppzmq 4.9 CONFIG REQUIRED)
find_package(boost_headers 1.81 CONFIG REQUIRED)  # Boost.Beast and Asio (header-only)
find_package(prometheus-cpp CONFIG REQUIRED)  # no version: the package reports "unknown"
find_package(OpenSSL 3 REQUIRED)  # the gateway: TLS (Beast over Asio SSL) and API key digests

if(MOEMESH_TESTS)
  find_package(GTest REQUIRED)
endif()
if(MOEMESH_BENCH)
  find_package(benchmark REQUIRED)
endif()

if(MOEMESH_CUDA)
  # Hopper only unless the caller says otherwise; set before enable_language,
  # which would otherwise pick the compiler's default architecture.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
  find_package(CUDAToolkit REQUIRED)
  # A CUDA build is carried to GPU machines that lack our Debian libraries:
  # binaries also look in <build>/lib (scripts/bundle_gpu_build.sh fills it).
  # DT_RPATH, unlike DT_RUNPATH, also serves those libraries' own dependencies.
  list(APPEND CMAKE_BUILD_RPATH "\$ORIGIN/../lib")
  add_link_options("LINKER:--disable-new-dtags")
endif()

# CAF 0.17 ships no CMake config: imported targets of our own.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
add_library(caf::core UNKNOWN IMPORTED)
set_target_properties(caf::core PROPERTIES IMPORTED_LOCATION ${CAF_CORE_LIBRARY}
                      INTERFACE_INCLUDE_DIRECTORIES ${CAF_INCLUDE_DIR})

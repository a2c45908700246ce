# -DMOEMESH_SANITIZE=address,undefined (or thread): every C++ target compiled and
# linked with those sanitizers; scripts/sanitize.sh builds and runs the tests so.
set(MOEMESH_SANITIZE "" CACHE STRING "Sanitizers for every target: address,undefined | thread")
if(MOEMESH_SANITIZE)
  if(MOEMESH_SANITIZE MATCHES "thread" AND MOEMESH_SANITIZE MATCHES "address")
    message(FATAL_ERROR "MOEMESH_SANITIZE: thread cannot be combined with address")
  endif()
  # UndefinedBehaviorSanitizer goes on the layers where undefined behaviour
  # lives (arithmetic, parsing, kernels, the engine: moemesh_ubsan_layers below),
  # not on every target: instrumenting the CAF and Beast templates that the
  # actors, roles, CLI and tests instantiate doubles their compile time.
  set(_san_all ${MOEMESH_SANITIZE})
  string(REPLACE "undefined" "" _san_compile "${MOEMESH_SANITIZE}")
  string(REGEX REPLACE ",+" "," _san_compile "${_san_compile}")
  string(REGEX REPLACE "^,|,$" "" _san_compile "${_san_compile}")
  # Frame pointers give whole stacks in reports.
  if(_san_compile)
    add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${_san_compile}>)
  endif()
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>)
  add_link_options(-fsanitize=${_san_all})
  if(MOEMESH_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # libstdc++'s atomic_thread_fence, which TSan cannot model, warns in every file.
    add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-Wno-tsan>)
  endif()
endif()

# After the targets exist: UBSan on these layers (a UB report aborts the process,
# so the test that hit it fails).
function(moemesh_ubsan_layers)
  if(NOT MOEMESH_SANITIZE MATCHES "undefined")
    return()
  endif()
  foreach(lib ${ARGN})
    if(TARGET ${lib})
      target_compile_options(${lib} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=undefined -fno-sanitize-recover=undefined>)
    endif()
  endforeach()
endfunction()

# Sanitizer builds compile at -O0 (scripts/sanitize.sh): the optimizer is most of
# the compile time of the Asio/Beast and CAF templates in the actors, roles and
# CLI, and those mostly wait on sockets. The layers that compute (the engine,
# kernels, tokenizer, grammar, request parsing) and the test binaries stay at
# this level: the tests run models and parse 129k-token vocabularies, and a test
# binary's own copies of header templates (nlohmann::json's parser) are the ones
# its link keeps.
set(MOEMESH_SANITIZE_OPT "-O1" CACHE STRING "Optimization of the compute layers and tests in sanitizer builds")
function(moemesh_sanitize_optimized)
  if(NOT MOEMESH_SANITIZE)
    return()
  endif()
  foreach(lib ${ARGN})
    if(TARGET ${lib})
      target_compile_options(${lib} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${MOEMESH_SANITIZE_OPT}>)
    endif()
  endforeach()
endfunction()

# -DMOEMESH_SANITIZE=address,undefined (or thread): every C++ target compiled and
# linked with those sanitizers; scripts/sanitize.sh builds and runs the tests so.
set(MOEMESH_SANITIZE "" CACHE STRING "Sanitizers for every target: address,undefined | thread")
if(MOEMESH_SANITIZE)
  if(MOEMESH_SANITIZE MATCHES "thread" AND MOEMESH_SANITIZE MATCHES "address")
    message(FATAL_ERROR "MOEMESH_SANITIZE: thread cannot be combined with address")
  endif()
  set(_san -fsanitize=${MOEMESH_SANITIZE})
  # Frame pointers give whole stacks in reports.
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:${_san}> $<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>)
  add_link_options(${_san})
  if(MOEMESH_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # libstdc++'s atomic_thread_fence, which TSan cannot model, warns in every file.
    add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-Wno-tsan>)
  endif()
  if(MOEMESH_SANITIZE MATCHES "undefined")
    # A UB report aborts the process, so the test that hit it fails.
    add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fno-sanitize-recover=undefined>)
  endif()
endif()

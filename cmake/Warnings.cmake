# Project-wide warning flags, applied per target with moemesh_warnings(target).
function(moemesh_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
endfunction()

# Compiler flags shared by every strata target.
add_library(strata_flags INTERFACE)
target_compile_options(strata_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wno-unused-parameter -Wno-missing-field-initializers
  $<$<CONFIG:Release>:-O3>
  $<$<CONFIG:RelWithDebInfo>:-O2>)
# Baseline ISA only: wider instruction sets are chosen at run time (Highway dynamic dispatch).
target_compile_options(strata_flags INTERFACE -fno-math-errno)
if(STRATA_SANITIZE)
  target_compile_options(strata_flags INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(strata_flags INTERFACE -fsanitize=address,undefined)
endif()
target_compile_definitions(strata_flags INTERFACE STRATA_SHARED_DIR="${STRATA_SHARED_DIR}")

# strata_layer(NAME DEPS...): one static library per layer, sources globbed from src/NAME.
# A layer links only the layers it may use, so a wrong dependency fails to link.
function(strata_layer name)
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${name}/*.cpp)
  if(srcs)
    add_library(strata_${name} STATIC ${srcs})
    target_include_directories(strata_${name} PUBLIC ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/include)
    target_link_libraries(strata_${name} PUBLIC strata_flags ${ARGN})
  else()  # a layer with headers only (so far)
    add_library(strata_${name} INTERFACE)
    target_include_directories(strata_${name} INTERFACE ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/include)
    target_link_libraries(strata_${name} INTERFACE strata_flags ${ARGN})
  endif()
endfunction()

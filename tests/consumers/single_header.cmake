# A consumer of copied single headers, run by ctest (tests/consumers/CMakeLists.txt):
#   cmake "-DHEADERS=<single_include/chorus/X.hpp;...>" -DSOURCE=<consumer .cpp> -DWORK=<scratch dir>
#         -DCXX=<compiler> -DMODEL=<model.gguf> [-DFORBIDDEN=<regex of headers it must not read>] -P single_header.cmake
# Copies the headers alone into WORK/include/chorus/, compiles SOURCE against them as a user
# would (c++ -std=c++20 -O1 -pthread, dependencies from the system include path), runs it on MODEL.
foreach(var HEADERS SOURCE WORK CXX MODEL)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "single_header.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/include/chorus")
set(names "")
foreach(header IN LISTS HEADERS)
  get_filename_component(file_name "${header}" NAME)
  file(COPY_FILE "${header}" "${WORK}/include/chorus/${file_name}")
  list(APPEND names "${file_name}")
endforeach()
list(JOIN names " + " name)
set(flags -std=c++20 -O1 -pthread "-I${WORK}/include")

if(DEFINED FORBIDDEN)
  # Which headers the translation unit reads (-M): none may match FORBIDDEN.
  execute_process(COMMAND "${CXX}" ${flags} -M "${SOURCE}" OUTPUT_VARIABLE deps RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "listing the headers of ${SOURCE} failed")
  endif()
  string(REGEX MATCHALL "[^ \t\r\n\\\\]+" deps "${deps}")
  list(FILTER deps INCLUDE REGEX "${FORBIDDEN}")
  if(deps)
    list(JOIN deps "\n  " shown)
    message(FATAL_ERROR "${name} reads headers it must not (${FORBIDDEN}):\n  ${shown}")
  endif()
  message(STATUS "${name}: no header matching ${FORBIDDEN} is read")
endif()

execute_process(COMMAND "${CXX}" ${flags} "${SOURCE}" -o "${WORK}/consumer" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "compiling ${SOURCE} against the copied ${name} failed")
endif()
execute_process(COMMAND "${WORK}/consumer" "${MODEL}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the consumer built on ${name} exited with ${rc}")
endif()

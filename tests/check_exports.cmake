# The ABI check: libfastmix.so exports only fastmix_* symbols, and all of the
# C API.  Run as: cmake -DNM=<nm> -DLIB=<libfastmix.so> -P check_exports.cmake
cmake_minimum_required(VERSION 3.25)
if(NOT NM OR NOT LIB)
  message(FATAL_ERROR "usage: cmake -DNM=<nm> -DLIB=<library> -P check_exports.cmake")
endif()
execute_process(COMMAND ${NM} -D --defined-only ${LIB}
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} -D --defined-only ${LIB} failed (${rc}): ${err}")
endif()
string(REPLACE "\n" ";" lines "${out}")
set(names "")
set(bad "")
foreach(line IN LISTS lines)
  if(line STREQUAL "")
    continue()
  endif()
  # "<address> <type> <name>[@version]"
  string(REGEX REPLACE "^[0-9a-fA-F]* *[A-Za-z] +" "" name "${line}")
  string(REGEX REPLACE "@.*$" "" name "${name}")
  list(APPEND names "${name}")
  if(NOT name MATCHES "^fastmix_[A-Za-z0-9_]+$")
    list(APPEND bad "${line}")
  endif()
endforeach()
if(bad)
  string(REPLACE ";" "\n  " bad "${bad}")
  message(FATAL_ERROR "${LIB} exports symbols outside the fastmix_ C API:\n  ${bad}")
endif()
foreach(api fastmix_status_string fastmix_last_error fastmix_version fastmix_cuda_device_count
            fastmix_sample fastmix_blend fastmix_mixup fastmix_cross_entropy fastmix_soft_targets
            fastmix_cross_entropy_ws fastmix_cross_entropy_workspace_size
            fastmix_sample_device_seed fastmix_mixup_device_seed
            fastmix_cutmix_sample fastmix_cutmix_apply fastmix_cutmix
            fastmix_cutmix_sample_device_seed fastmix_cutmix_device_seed
            fastmix_cutmix_apply_u8 fastmix_cutmix_u8 fastmix_cutmix_u8_device_seed
            fastmix_loss fastmix_loss_config_init fastmix_loss_workspace_size)
  if(NOT api IN_LIST names)
    message(FATAL_ERROR "${LIB} does not export ${api}")
  endif()
endforeach()
list(LENGTH names count)
message(STATUS "${LIB}: ${count} exported symbols, all fastmix_*")

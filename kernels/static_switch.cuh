// Run-time values turned into compile-time ones, so that one call site picks
// among copies of a kernel or of a loop compiled for each value:
//   bool_switch(b, [&](auto B) { ... decltype(B)::value ... });
//   with_constant<Lo, Hi>(v, [&](auto V) { ... decltype(V)::value ... });
// Both work in host code (choosing a kernel to launch) and in device code
// (choosing a loop; the branch is uniform where the value is).
#pragma once

#include <type_traits>

namespace fm {

// The pragmas let one template call a host-only lambda from host code and a
// device lambda from device code (CUB marks its host-device templates so).

// f(std::true_type{}) when b, else f(std::false_type{}); returns what f does.
#pragma nv_exec_check_disable
template <class F>
__host__ __device__ __forceinline__ decltype(auto) bool_switch(bool b, const F &f) {
  if (b) return f(std::true_type{});
  return f(std::false_type{});
}

// f(std::integral_constant<int, S>{}) for the run-time value v, one of
// Lo .. Hi - 1, by a chain of branches; no call for any other value.
#pragma nv_exec_check_disable
template <int Lo, int Hi, class F>
__host__ __device__ __forceinline__ void with_constant(int v, const F &f) {
  if constexpr (Lo < Hi) {
    if (v == Lo)
      f(std::integral_constant<int, Lo>{});
    else
      with_constant<Lo + 1, Hi>(v, f);
  }
}

}  // namespace fm

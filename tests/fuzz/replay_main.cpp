// Replays files through the fuzz harness without libFuzzer (CTest's
// fuzz_corpus test): each argument is an input file or a directory of them.
// Any contract violation aborts, as under the fuzzer.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

namespace {
int run_file(const std::filesystem::path &p) {
  std::ifstream in(p, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  (void)LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
  return 1;
}
}  // namespace

int main(int argc, char **argv) {
  int runs = 0;
  for (int a = 1; a < argc; ++a) {
    const std::filesystem::path p(argv[a]);
    if (std::filesystem::is_directory(p)) {
      for (const auto &e : std::filesystem::directory_iterator(p))
        if (e.is_regular_file()) runs += run_file(e.path());
    } else {
      runs += run_file(p);
    }
  }
  std::printf("fuzz replay: %d inputs passed\n", runs);
  return runs > 0 ? 0 : 1;
}

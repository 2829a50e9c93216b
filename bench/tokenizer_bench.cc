// Tokenizer throughput: encodes the lines of a text file (repeated up to
// --megabytes) with a model directory's tokenizer and prints MB/s and tokens/s,
// the median of --repeats runs.
//
//   build/bin/bench_tokenizer --model DIR [--file TEXT] [--megabytes 4] [--repeats 3]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "src/tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  std::string model_dir;
  std::string file = SIGNROUND_BENCH_SHARED_DIR "/data/tinystories-valid-excerpt.txt";
  double megabytes = 4;
  int repeats = 3;
  CLI::App app{"Tokenizer throughput"};
  app.add_option("--model", model_dir, "Directory with tokenizer.json or tokenizer.model")
      ->required();
  app.add_option("--file", file, "UTF-8 text, one text per line")->capture_default_str();
  app.add_option("--megabytes", megabytes, "Text to encode per run")->capture_default_str();
  app.add_option("--repeats", repeats, "Runs; the median is printed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  absl::StatusOr<std::unique_ptr<signround::Tokenizer>> tokenizer =
      signround::LoadTokenizer(model_dir);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", std::string(tokenizer.status().message()).c_str());
    return 2;
  }
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  if (lines.empty()) {
    std::fprintf(stderr, "bench_tokenizer: %s has no text\n", file.c_str());
    return 2;
  }
  // The file's lines, repeated until the text reaches the size asked for.
  std::vector<std::string> texts;
  size_t bytes = 0;
  for (size_t i = 0; bytes < megabytes * 1e6; ++i) {
    texts.push_back(lines[i % lines.size()]);
    bytes += texts.back().size();
  }
  std::vector<double> seconds;
  size_t tokens = 0;
  for (int r = 0; r < repeats; ++r) {
    tokens = 0;
    const auto start = std::chrono::steady_clock::now();
    for (const std::string& t : texts) {
      absl::StatusOr<std::vector<int64_t>> ids = (*tokenizer)->Encode(t);
      if (!ids.ok()) {
        std::fprintf(stderr, "bench_tokenizer: %s\n", std::string(ids.status().message()).c_str());
        return 1;
      }
      tokens += ids->size();
    }
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  std::printf("tokenizer:      %s\n", (*tokenizer)->Describe().c_str());
  std::printf("text:           %.2f MB in %zu texts (%s)\n", bytes / 1e6, texts.size(), file.c_str());
  std::printf("tokens:         %zu (%.2f bytes per token)\n", tokens, double(bytes) / tokens);
  std::printf("seconds:        %.3f median of %d (min %.3f, max %.3f)\n", median, repeats,
              seconds.front(), seconds.back());
  std::printf("throughput:     %.2f MB/s, %.0f tokens/s\n", bytes / 1e6 / median, tokens / median);
  return 0;
}

// Named recipes: the defaults a job starts from before its explicit settings.
#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace signround::contract {

struct Recipe {
  const char* name;
  int iters;                  // 0: round to nearest, no tuning
  int nsamples;               // calibration samples
  double lr;                  // 0: 1 / iters
  bool scale_search = false;  // start from the importance-weighted scale search
  // SignRoundV2 (the scale search and the loss filter) for a uniform symmetric integer job of
  // 2 up to this many bits, where the request leaves them unset (0: never): where it was
  // measured to win (README, "Beyond SignRound v1").
  int v2_max_bits = 0;
};

// Every recipe, the default first.
inline constexpr Recipe kRecipes[] = {
    {"default", 200, 128, 0, /*scale_search=*/false, /*v2_max_bits=*/3},
    {"best", 1000, 512, 0},
    {"light", 50, 128, 5e-3},
    {"rtn", 0, 128, 0},
    {"opt_rtn", 0, 128, 0, /*scale_search=*/true},
};
inline constexpr char kRecipeNames[] = "default, best, light, rtn, opt_rtn";

// The recipe called `name`; INVALID_ARGUMENT "'<name>' is not one of default, best,
// light, rtn, opt_rtn" (callers put the field or flag in front).
absl::StatusOr<Recipe> FindRecipe(absl::string_view name);

}  // namespace signround::contract

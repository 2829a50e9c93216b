#include "src/contract/recipe.h"

#include "absl/strings/str_cat.h"
#include "src/common/utf8.h"

namespace signround::contract {

absl::StatusOr<Recipe> FindRecipe(absl::string_view name) {
  for (const Recipe& r : kRecipes) {
    if (name == r.name) return r;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(QuoteUntrusted(name), " is not one of ", kRecipeNames));
}

}  // namespace signround::contract

// The supported model families (one file each in this folder), registered in
// src/model/family.cc.
#pragma once

#include "src/model/family.h"

namespace signround::families {

extern const ModelFamily kLlama;
extern const ModelFamily kMistral;
extern const ModelFamily kQwen2;
extern const ModelFamily kQwen3;
extern const ModelFamily kQwen3Moe;
extern const ModelFamily kMixtral;
extern const ModelFamily kGemma3;
extern const ModelFamily kPhi3;

}  // namespace signround::families

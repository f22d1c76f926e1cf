"""Published checkpoints at their real sizes: their `config.json` values (data in `published/`), random weights.

Each `published/NAME.json` holds, per model_index key, the library, class and config of the published
checkpoint (`checkpoint` names it); nothing is downloaded. `build_published` writes a diffusers pipeline folder
from it with seeded random weights, for the components asked for (the others get their config only: enough for
the memory estimate, which reads configs) and our locally learned tokenizers (vocabularies are tokenizer data,
not sizes: the encoders keep their published vocabulary sizes). Used by `benchmarks/bench_realsize.py` and the
tests of the memory budget (`converters/byom/budget.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converters.byom.budget import PartCount, count_parameters
from converters.errors import ConversionError

DATA = Path(__file__).with_name("published")
TOKENIZER_KEYS = ("tokenizer", "tokenizer_2", "tokenizer_3")


@dataclass(frozen=True)
class Published:
    name: str  # short name, e.g. "sdxl-turbo"
    checkpoint: str  # the published repository the configs come from
    pipeline: str  # diffusers pipeline class (model_index.json `_class_name`)
    components: dict[str, dict[str, Any]]  # model_index key -> {"library", "class", "config"}
    options: dict[str, Any]  # other model_index.json entries (e.g. force_zeros_for_empty_prompt)
    notes: str = ""  # where the folder departs from the checkpoint (e.g. a scheduler we map it onto)

    def models(self) -> list[str]:
        """The model_index keys that hold weights (not tokenizers or the scheduler)."""
        return [k for k in self.components if k not in TOKENIZER_KEYS and k != "scheduler"]

    def parameters(self, key: str) -> int:
        comp = self.components[key]
        return count_parameters(comp["library"], comp["class"], comp["config"])

    def part(self, key: str) -> PartCount:
        return PartCount(key, self.components[key]["class"], self.parameters(key))


def names() -> list[str]:
    """The published checkpoints we carry configs of."""
    return sorted(p.stem for p in DATA.glob("*.json"))


def load(name: str) -> Published:
    """The data of `name`; ConversionError lists the valid names."""
    path = DATA / f"{name}.json"
    if not path.is_file():
        raise ConversionError(f"no published config named {name!r}; choose from: {', '.join(names())}")
    data = json.loads(path.read_text(encoding="utf-8"))
    return Published(data["name"], data["checkpoint"], data["pipeline"], data["components"],
                     data.get("options", {}), data.get("notes", ""))


def build_published(name: str, directory: Path, weights: tuple[str, ...] | None = None, seed: int = 0,
                    overrides: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write the pipeline folder of `name` at `directory`: seeded random fp32 weights for the model keys in
    `weights` (None: all of them), config only for the other models; `overrides` changes config values by key
    (a stand-in, e.g. a 1-layer T5 of the published width where the real one would not fit); returns `directory`."""
    import torch

    pub = load(name)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    wanted = pub.models() if weights is None else list(weights)
    index: dict[str, Any] = {"_class_name": pub.pipeline, **pub.options}
    for key, comp in pub.components.items():
        if overrides and key in overrides:
            comp = {**comp, "config": {**comp["config"], **overrides[key]}}
        index[key] = [comp["library"], comp["class"]]
        folder = directory / key
        if key in TOKENIZER_KEYS:
            _tokenizer(folder, comp["class"], pub, key)
        elif key == "scheduler":
            _scheduler(folder, comp)
        elif key in wanted:
            torch.manual_seed(seed)
            _model(comp, _vocabulary_ids(pub, key)).save_pretrained(folder, safe_serialization=True)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "config.json").write_text(json.dumps({"_class_name": comp["class"], **comp["config"]},
                                                           indent=1), encoding="utf-8")
    (directory / "model_index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    return directory


def _model(comp: dict[str, Any], ids: dict[str, int]):  # noqa: ANN202 - a diffusers or transformers model
    import diffusers
    import transformers

    config = {**comp["config"], **ids}
    if comp["library"] == "diffusers":
        return getattr(diffusers, comp["class"]).from_config(config).eval()
    cls = getattr(transformers, comp["class"])
    return cls(cls.config_class.from_dict(config)).eval()


def _vocabulary_ids(pub: Published, key: str) -> dict[str, int]:
    """CLIP encoders: the special-token ids of our learned vocabulary (the published ids index the real one)."""
    if pub.components[key]["class"] not in ("CLIPTextModel", "CLIPTextModelWithProjection"):
        return {}
    from converters.byom.fixtures import BOS, EOS, learn_bpe

    vocab, _ = learn_bpe()
    return {"bos_token_id": vocab[BOS], "eos_token_id": vocab[EOS], "pad_token_id": vocab[EOS]}


def _tokenizer(folder: Path, class_name: str, pub: Published, key: str) -> None:
    from converters.byom import fixtures

    folder.mkdir(parents=True, exist_ok=True)
    if class_name.startswith("T5"):
        fixtures.t5_tokenizer(folder).save_pretrained(folder)
        return
    if class_name.startswith("CLIP"):
        from transformers import CLIPTokenizer

        vocab, merges = fixtures.learn_bpe()
        pad = "!" if key == "tokenizer_2" and pub.pipeline.startswith("StableDiffusionXL") else fixtures.EOS
        CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77, pad_token=pad).save_pretrained(folder)
        fixtures._write_vocab(folder, vocab, merges)
        return
    if class_name.startswith("Gemma"):  # Sana's Gemma tokenizer: a SentencePiece BPE learned here
        from converters.byom.sana_fixtures import gemma_tokenizer

        gemma_tokenizer(folder, fixtures.T5_CORPUS).save_pretrained(folder)
        return
    raise ConversionError(f"{pub.name}: no local tokenizer for {class_name}")


def _scheduler(folder: Path, comp: dict[str, Any]) -> None:
    import diffusers

    getattr(diffusers, comp["class"]).from_config(comp["config"]).save_pretrained(folder)

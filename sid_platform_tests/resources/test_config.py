"""Dagster configs generated from the core dataclasses: same fields, same defaults, the core's comments."""

import dataclasses

import pytest

from sid_platform.assets.semantic_ids import CodebooksConfig, ItemEmbeddingsConfig
from sid_platform.embed.pipeline import EmbeddingSpec
from sid_platform.resources import config_class
from sid_platform.resources.config import field_comments
from sid_platform.semantic_ids import RQKMeansConfig, RQKMeansTokenizer, RQVAEConfig, RQVAETokenizer, TokenizerSpec


@pytest.mark.parametrize(("config", "core"), [(CodebooksConfig, TokenizerSpec), (ItemEmbeddingsConfig, EmbeddingSpec)])
def test_generated_configs_have_the_core_fields_and_defaults(config, core):
    assert list(config.model_fields) == [f.name for f in dataclasses.fields(core)]
    assert config().core() == core()
    for name, value in dataclasses.asdict(core()).items():
        assert getattr(config(), name) == (list(value) if isinstance(value, tuple) else value)


def test_descriptions_come_from_the_core_comments():
    fields = ItemEmbeddingsConfig.model_fields
    assert fields["encoders"].description.startswith("auto | minilm | t5 | clip | collaborative")  # comment above
    assert fields["t5_path"].description == "local folder of a T5 model (save_pretrained layout)"  # beside
    assert fields["batch_size"].description is None
    comments = field_comments(TokenizerSpec)
    assert comments["tokenizer"] == "rqvae | rqkmeans"
    assert comments["kmeans_niter"].startswith("k-means iterations")  # inherited from RQVAEConfig


def test_tuples_travel_as_lists_and_come_back_as_tuples():
    config = CodebooksConfig(hidden_dims=[64, 32], init="random")
    assert config.core().hidden_dims == (64, 32) and config.core().init == "random"


def test_a_field_without_a_plain_default_is_refused():
    @dataclasses.dataclass
    class Knobs:
        sizes: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="no plain default"):
        config_class("KnobsConfig", Knobs)


def test_the_spec_builds_the_tokenizer_it_names():
    rqvae = CodebooksConfig(levels=3, codebook_size=16, epochs=2).build(n_items=12_101)  # an explicit size is kept
    assert isinstance(rqvae, RQVAETokenizer)
    assert rqvae.config == RQVAEConfig(levels=3, codebook_size=16, epochs=2)
    rqkmeans = CodebooksConfig(tokenizer="rqkmeans", levels=2, codebook_size=8, kmeans_niter=5, seed=3).build(320)
    assert isinstance(rqkmeans, RQKMeansTokenizer)
    assert rqkmeans.config == RQKMeansConfig(levels=2, codebook_size=8, niter=5, seed=3)
    with pytest.raises(ValueError, match="unknown tokenizer"):
        TokenizerSpec(tokenizer="pq", codebook_size=8).build()  # type: ignore[arg-type]
    assert CodebooksConfig().build(n_items=320).codebook_size == 16  # unset: follows the catalog
    with pytest.raises(ValueError, match="resolved"):
        TokenizerSpec().build()

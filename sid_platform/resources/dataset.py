"""Where the data comes from: one resource over the core loaders (P5, raw Amazon, generic files, synthetic)."""

from dagster import ConfigurableResource, get_dagster_logger
from pydantic import Field

from sid_platform.data.amazon_raw import RemoteFile, load_amazon_raw
from sid_platform.data.files import DataNotFoundError, find_file
from sid_platform.data.generic import load_generic
from sid_platform.data.p5 import dataset_folders, load_p5
from sid_platform.data.schema import LoadedData
from sid_platform.data.synthetic import generate
from sid_platform.settings import DATA_DIR_ENV, resolve_data_dir

SOURCES = "auto | p5 | amazon_raw | generic | synthetic"


class DatasetResource(ConfigurableResource):
    """Which source feeds the graph, and where its files are.

    ``source="auto"`` reads the P5-format dataset from the data directory (config ``data_dir`` or the
    ``SID_DATA_DIR`` environment variable); when neither is set it falls back to the synthetic
    generator and says so loudly. Any explicit source fails with a clear message when files are missing.
    """

    source: str = Field(default="auto", description=SOURCES)
    data_dir: str | None = Field(default=None, description=f"folder with the data; defaults to ${DATA_DIR_ENV}")
    dataset: str = Field(default="beauty", description="P5 dataset folder name (beauty, sports)")
    raw_category: str = Field(
        default="Beauty", description="amazon_raw: the <Category> in reviews_<Category>_5.json.gz"
    )
    reviews_url: str | None = None
    reviews_sha256: str | None = None
    meta_url: str | None = None
    meta_sha256: str | None = None
    interactions_path: str | None = Field(default=None, description="generic: CSV, Parquet or JSON lines")
    items_path: str | None = Field(default=None, description="generic: optional catalog file")
    interaction_columns: dict[str, str] = Field(default_factory=dict, description="normalized name -> your column")
    item_columns: dict[str, str] = Field(default_factory=dict, description="normalized name -> your column")
    category_separator: str = ">"
    synthetic_users: int = 800
    synthetic_items: int = 320
    synthetic_seed: int = 0

    def missing_files(self) -> list[str]:
        """What the configured source would not find, one line each, checked before a run starts (nothing is
        read), so a wrong path is a one-line message rather than a failed step."""
        data_dir = resolve_data_dir(self.data_dir)
        source = ("p5" if data_dir is not None else "synthetic") if self.source == "auto" else self.source
        if source not in ("p5", "amazon_raw", "generic", "synthetic"):
            return [f"resources.dataset.config.source: unknown source {source!r}; choose {SOURCES}"]
        if source == "synthetic":
            return []
        if data_dir is None:
            return [
                f"source {source!r} needs a data directory: set ${DATA_DIR_ENV} or resources.dataset.config.data_dir"
            ]
        if source == "p5":
            try:
                for name in ("sequential_data.txt", "datamaps.json"):
                    find_file([name], dataset_folders(data_dir, self.dataset), f"P5 dataset {self.dataset!r}")
            except DataNotFoundError as error:
                return [" ".join(str(error).split())]
        if source == "generic":
            if not self.interactions_path:
                return ["source 'generic' needs resources.dataset.config.interactions_path"]
            paths = {"interactions_path": self.interactions_path, "items_path": self.items_path}
            return [
                f"resources.dataset.config.{key}: {data_dir / value} does not exist (relative paths start at the "
                f"data directory, {data_dir})"
                for key, value in paths.items()
                if value and not (data_dir / value).is_file()
            ]
        return []

    def load(self) -> LoadedData:
        data_dir = resolve_data_dir(self.data_dir)
        source = self.source
        if source == "auto":
            if data_dir is None:
                get_dagster_logger().warning(
                    "\n"
                    + "!" * 78
                    + f"\nNO DATA DIRECTORY: neither the dataset resource's data_dir nor ${DATA_DIR_ENV} "
                    "is set.\nRunning on the SYNTHETIC generator; figures from this run say nothing about real data.\n"
                    + "!"
                    * 78
                )
                source = "synthetic"
            else:
                source = "p5"
        if source == "synthetic":
            return generate(self.synthetic_users, self.synthetic_items, seed=self.synthetic_seed)
        if data_dir is None:
            raise ValueError(
                f"source {source!r} needs a data directory: set ${DATA_DIR_ENV} or the dataset resource's data_dir"
            )
        if source == "p5":
            return load_p5(data_dir, self.dataset)
        if source == "amazon_raw":
            reviews = (
                RemoteFile(self.reviews_url, self.reviews_sha256) if self.reviews_url and self.reviews_sha256 else None
            )
            meta = RemoteFile(self.meta_url, self.meta_sha256) if self.meta_url and self.meta_sha256 else None
            return load_amazon_raw(data_dir, self.raw_category, reviews, meta)
        if source == "generic":
            if not self.interactions_path:
                raise ValueError("source 'generic' needs interactions_path in the dataset resource config")
            items = data_dir / self.items_path if self.items_path else None
            return load_generic(
                data_dir / self.interactions_path,
                items,
                self.interaction_columns,
                self.item_columns,
                self.category_separator,
            )
        raise ValueError(f"unknown source {self.source!r}; choose auto, p5, amazon_raw, generic or synthetic")

"""The model and dataset sections: one config class per registered name, chosen by ``name``."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

import bigbench.data.specs  # noqa: F401  (registers the datasets)
import bigbench.models.specs  # noqa: F401  (registers the models)
from bigbench.data.registry import DATASETS
from bigbench.models.registry import MODELS


def _union_of(registry) -> object:  # noqa: ANN001 - a pydantic type expression
    members = tuple(spec.config_class for spec in registry)
    return Annotated[Union[members], Field(discriminator="name")]  # noqa: UP007


ModelConfig = _union_of(MODELS)
DataConfig = _union_of(DATASETS)

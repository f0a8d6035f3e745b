"""The built-in stages, one module each. A pipeline file names them by their short name
(`decode`, `clean`, `events`, `validate`; `clean` and `events` run the pipeline's
declaration) or any stage by `package.module:callable`.

Every stage module has `create(options) -> Stage`; see `seam.transforms.model` for the
contract.
"""

from __future__ import annotations

from typing import Final

BUILTIN: Final[dict[str, str]] = {
    "decode": "seam.transforms.stages.decode:create",
    "clean": "seam.transforms.stages.clean:create",
    "events": "seam.transforms.stages.events:create",
    "validate": "seam.transforms.stages.validate:create",
}

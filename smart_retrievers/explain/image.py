"""Evidence for image documents: each query token's best image token, as a cell of the encoder's patch grid.

The image is loaded and re-encoded as the encoder does, and each image token state is mapped to its
cell (:meth:`~smart_retrievers.encoders.vision.VisionEncoder.image_token_grid`: CLIP/SigLIP patches,
CLS excluded; Qwen-VL merged patches). :meth:`Evidence.heatmap_png` draws the shares over the image.
"""

from __future__ import annotations

from typing import Any

from .evidence import Evidence
from .matching import match_tokens, query_side

__all__ = ["explain_image"]


def explain_image(
    encoder: Any,
    query: str,
    image: Any,
    *,
    doc_id: str | None = None,
    text: str = "",
    lambda_pool: float = 1.0,
    lambda_late: float = 1.0,
) -> Evidence:
    """Evidence for an image document (encoded alone, as :meth:`SmartIndex.add_images` does) against a text query.

    ``image`` is anything the vision encoder reads (a path, URI, bytes, PIL image), loaded under
    its image policy and pixel bounds; ``text`` is the row's caption (kept, not encoded). Each
    match names the patch of its best image token (:class:`Match` ``patch`` / ``box``).
    """
    grid_of = getattr(encoder, "image_token_grid", None)
    if grid_of is None:
        raise NotImplementedError(f"{type(encoder).__name__} cannot explain image documents")
    loaded = encoder._load_image(image, 0)  # the image exactly as encode_images would see it
    grid = grid_of(loaded)
    d_enc = encoder.encode_images([loaded], show_progress=False)[0]
    if len(grid.cells) != len(d_enc.tokens):
        raise RuntimeError(
            f"{type(encoder).__name__}: {len(d_enc.tokens)} image token states but {len(grid.cells)} mapped cells"
        )
    q_enc, q_spans = query_side(encoder, query)
    matched = match_tokens(q_enc, d_enc, lambda_pool, lambda_late)

    def patch_token(j: int) -> dict[str, Any]:
        cell = grid.cells[j]
        patch = divmod(cell, grid.cols) if cell is not None else None
        return {
            "doc_token": f"patch {patch[0]},{patch[1]}" if patch is not None else "",
            "start": None,
            "end": None,
            "patch": patch,
            "box": grid.cell_box(cell) if cell is not None else None,
        }

    return matched.evidence(
        query,
        q_spans,
        doc_id,
        text,
        patch_token,
        modality="image",
        grid=(grid.rows, grid.cols),
        grid_box=grid.box,
        image=loaded,
    )

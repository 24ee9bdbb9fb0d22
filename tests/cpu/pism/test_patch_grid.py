"""`patch` masks use the merged-patch grid of the engine's own image processor: the grid VisionGrid
derives equals the grid the real transformers processor produces (image_grid_thw), for the tiny
model's processor, a Qwen2.5-VL-7B-style preprocessor_config.json and engine overrides."""
import json

import numpy as np
import pytest
from PIL import Image

from engine.generation.base import GenerationConfig

from engine.generation.factory import make_backend
from engine.vision_grid import VisionGrid
from engine.pism import mask_image

# (width, height): square, both orientations, small (upscaled), large (downscaled), very thin
SIZES = [(112, 112), (150, 90), (90, 150), (37, 53), (640, 480), (2000, 1500), (1000, 10)]

# What Qwen/Qwen2.5-VL-7B-Instruct ships: legacy min/max_pixels keys, no `size`.
QWEN7B_PREPROCESSOR = {
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor",
}


@pytest.fixture(scope="module")
def qwen7b_style(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qwen7b-processor")
    (folder / "preprocessor_config.json").write_text(json.dumps(QWEN7B_PREPROCESSOR))
    return folder


def _processor_grid(image_processor, w, h):
    """(rows, cols) of merged patches as the real processor computes them for a w x h image."""
    thw = image_processor(images=[Image.new("RGB", (w, h), "gray")], return_tensors="np")["image_grid_thw"][0]
    return int(thw[1]) // image_processor.merge_size, int(thw[2]) // image_processor.merge_size


def _load(folder, **kwargs):
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(folder, local_files_only=True, **kwargs)


@pytest.mark.parametrize("which", ["tiny", "qwen7b"])
def test_grid_equals_the_processors_grid(which, tiny_random_model, qwen7b_style):
    folder = tiny_random_model if which == "tiny" else qwen7b_style
    grid, proc = VisionGrid.from_model(str(folder)), _load(folder)
    assert grid.cell == 28
    for w, h in SIZES:
        assert grid.shape(h, w) == _processor_grid(proc, w, h), (which, w, h)


@pytest.mark.parametrize("overrides,kwargs", [
    ({"max_pixels": 200704}, {"max_pixels": 200704}),
    ({"min_pixels": 50176}, {"min_pixels": 50176}),
    ({"size": {"shortest_edge": 6272, "longest_edge": 100352}}, {"min_pixels": 6272, "max_pixels": 100352}),
])
def test_engine_overrides_move_the_grid_with_the_processor(overrides, kwargs, qwen7b_style):
    """vLLM's mm_processor_kwargs resize the image differently: the mask grid must follow."""
    grid, proc = VisionGrid.from_model(str(qwen7b_style), overrides), _load(qwen7b_style, **kwargs)
    assert grid != VisionGrid.from_model(str(qwen7b_style))
    for w, h in SIZES:
        assert grid.shape(h, w) == _processor_grid(proc, w, h), (overrides, w, h)


def test_hf_backend_reports_the_grid_of_the_processor_it_runs(tiny_random_model):
    backend = make_backend(GenerationConfig(backend="hf", model_path=str(tiny_random_model), device="cpu"))
    try:
        assert backend.vision_grid() == VisionGrid.from_model(str(tiny_random_model)) == VisionGrid(28, 12544, 12544)
    finally:
        backend.close()


def test_patch_mask_blacks_out_whole_cells_of_the_processors_grid(qwen7b_style):
    """A 640x480 image is 17 x 23 merged patches for the 7B processor; half of them go black, each
    cell wholly, at the cell's place in the original image."""
    grid = VisionGrid.from_model(str(qwen7b_style))
    w, h = 640, 480
    gy, gx = _processor_grid(_load(qwen7b_style), w, h)
    img = Image.fromarray(np.random.default_rng(0).integers(1, 255, size=(h, w, 3), dtype=np.uint8))
    black = np.array(mask_image(img, 0.5, "patch", 11, grid=grid)).sum(axis=2) == 0
    ys = np.linspace(0, h, gy + 1).round().astype(int)
    xs = np.linspace(0, w, gx + 1).round().astype(int)
    cover = np.array([[black[ys[i]:ys[i + 1], xs[j]:xs[j + 1]].mean() for j in range(gx)] for i in range(gy)])
    assert set(np.unique(cover).tolist()) == {0.0, 1.0}
    assert cover.sum() == round(0.5 * gy * gx)

"""The tiny SD1 fixture model (Tests/Fixtures/sd/sd1) as a diffusers
StableDiffusionPipeline, shared by the scheduler reference scripts
(make_euler_fixtures.py, make_dpm_fixtures.py): the pipeline, its scheduler
config, the UNet's context width and latent size, a CFG 7.5 run from given
embeddings and noise, and a recorder of the noise a scheduler module draws.
"""
import contextlib
import json
from pathlib import Path

from diffusers import StableDiffusionPipeline

ROOT = Path(__file__).resolve().parents[1] / "Fixtures" / "sd"
folder = ROOT / "sd1"
pipe = StableDiffusionPipeline.from_pretrained(str(folder), tokenizer=None, safety_checker=None, feature_extractor=None,
                                               requires_safety_checker=False)
pipe.set_progress_bar_config(disable=True)
base = dict(pipe.scheduler.config)
_unet = json.loads((folder / "unet" / "config.json").read_text())
hidden, size = _unet["cross_attention_dim"], _unet["sample_size"]


def run(positive, negative, noise, steps, **kwargs):
    """Latents after `steps` steps of the pipeline's current scheduler, CFG 7.5."""
    return pipe(prompt_embeds=positive, negative_prompt_embeds=negative, latents=noise.clone(), num_inference_steps=steps,
                guidance_scale=7.5, output_type="latent", **kwargs).images


@contextlib.contextmanager
def recording_noise(module):
    """Within the block, every randn_tensor the scheduler `module` calls is kept (in order) in the yielded list."""
    drawn, original = [], module.randn_tensor

    def recording(*args, **kwargs):
        sample = original(*args, **kwargs)
        drawn.append(sample.clone())
        return sample

    module.randn_tensor = recording
    try:
        yield drawn
    finally:
        module.randn_tensor = original

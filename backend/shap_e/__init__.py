"""The Shap-E model family (openai/shap-e: text -> 3D, openai/shap-e-img2img: image -> 3D)
through diffusers' pipelines, behind the project's one job function (backend/pipeline.py).

    folders.py  the folder checks (standard library only: imported without torch)
    loader.py   safe loading of a checked folder into diffusers' pipeline
    inputs.py   the prompt (token limit note) and the picture (transparency on white)
    job.py      generate_mesh: progress and cancel per diffusion step, seed, stages
    decode.py   latent -> signed distances on a grid -> marching cubes -> vertex colours
    frames.py   Shap-E's axes and colours as the project's mesh result

This file imports nothing, so checking a folder never loads torch or diffusers.
"""

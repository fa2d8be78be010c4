"""Make-It-3D (Tang et al., ICCV 2023) on pip-installable parts: a coarse field optimised
with a reference-view loss, DPT depth, SDS with Stable Diffusion 2 and a CLIP loss, then
a UV texture refined with SDS on the mesh stage's mesh (docs/make_it_3d.md).

folders.py needs only the standard library; the rest imports torch (and diffusers and
transformers when models load). The job function is job.refine.
"""

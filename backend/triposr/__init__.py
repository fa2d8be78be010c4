"""The TripoSR network, weight-compatible with the official checkpoint.

config.py reads config.yaml; checkpoint.py loads model.ckpt strictly and safely; vit.py
is the image encoder (DINO ViT-B/16); triplane.py the triplane tokens, transformer
backbone and upsampler; field.py the NeRF decoder (density and colour at points);
model.py wires them together.
"""

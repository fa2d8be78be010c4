"""Make-It-3D's options, with our defaults (from TripoSR's start) and the paper's (from an
empty field). Standard library only.

Where a number comes from the paper's official code (junshutang/Make-It-3D, main.py and
nerf/*.py) it says so; docs/make_it_3d.md explains every difference.
"""

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class RefineOptions:
    seed: int = 0
    negative_prompt: str = ""
    foreground_ratio: float = 0.85  # TripoSR's framing, so its reference camera fits the picture
    remove_background: bool = True

    # Coarse stage: the field, volume rendering and its losses.
    coarse_iterations: int = 400  # paper: 2000 near the front, then 5000 all round
    front_iterations: int = 100  # cameras within front_half_width of the reference view...
    widen_iterations: int = 200  # ...then the range widens linearly to the full circle
    front_half_width: float = 45.0  # degrees; the paper's first run samples 135-225 around 180
    reference_every: int = 4  # every 4th iteration renders the reference view (paper: index % 4 == 0)
    diffusion_start: int = 0  # paper: 400 iterations of reference view and regularisers alone
    render_size: int = 128  # paper's training resolution (--w --h 128)
    samples: int = 64  # per ray, stratified (paper's PyTorch renderer: 64 ...)
    fine_samples: int = 32  # ... plus 32 importance samples
    guidance_scale: float = 11.0  # diffusers' convention; the paper's code's 10 means 11 here
    t_range: tuple = (0.2, 0.6)  # diffusion times for novel views (paper: --step_range 0.2 0.6)
    clip_below: float = 0.4  # t <= this: the CLIP loss of the denoised view, else SDS (paper's code)
    planes_lr: float = 1e-2  # paper: the hash grid at 10x the MLP's rate
    decoder_lr: float = 1e-3  # paper: --lr 1e-3
    train_decoder: bool = False  # TripoSR's decoder stays as trained; an empty start always trains its own
    reference_weight: float = 1000.0  # paper: --lambda_img 1e3, L1
    depth_weight: float = 1.0  # paper: --lambda_depth 1, 1 - Pearson
    sds_weight: float = 1.0
    clip_weight: float = 10.0  # paper's code: 10 x the CLIP loss of the denoised view
    opacity_weight: float = 1e-3  # paper: --lambda_opacity
    entropy_weight: float = 10.0  # paper: 1 before diffusion starts, 10 after
    orientation_weight: float = 0.1  # paper's code adds 1e-2 and 1e-1 once diffusion starts
    smoothness_weight: float = 1.0  # paper: --lambda_smooth
    regulariser_points: int = 8192  # samples (drawn by rendering weight) whose normals the last two use
    # cameras, in the model's frame (z up, the picture's camera on +x), around TripoSR's view
    reference_distance: float = 1.9
    reference_fov: float = 40.0
    distance_scale: tuple = (1.0, 1.5)  # paper: radius 1-1.5 with the reference at 1
    fov_scale: tuple = (0.75, 1.25)  # paper: fovy 15-25 degrees with the reference at 20
    elevation_range: tuple = (-20.0, 20.0)  # paper: polar angle 70-110 degrees
    sd_size: int = 512  # renders are resized to this for Stable Diffusion's VAE (paper: 512)
    empty_threshold: float = 10.0  # density level of the surface for an empty start (paper: --density_thresh)

    # Surface and the mesh stage (backend/mesh/asset/).
    surface_resolution: int = 256
    threshold: float = 25.0  # TripoSR's density level
    max_faces: int = 20000
    texture_size: int = 1024
    normal_map: bool = True

    # Refine stage: the UV texture, optimised with SDS in novel views.
    refine_iterations: int = 300  # paper: 3000 (a point cloud and a U-Net renderer)
    refine_render_size: int = 512
    refine_guidance_scale: float = 6.0  # paper's code: 5 in its convention
    refine_lr: float = 1e-2  # decays to a tenth over the stage (paper: 1e-3 to 1e-4 over 1000)
    refine_reg_weight: float = 1000.0  # keeps unseen texels near the coarse colours (paper: 1e3)
    min_facing: float = 0.2  # a texel takes the picture's colour when the surface faces the camera this much

    # The job.
    preview_every: int = 25  # iterations between preview images (0: none)
    checkpoint: bool | None = None  # recompute the field in the backward pass (None: on CUDA)
    cpu_limit_minutes: float = 20.0  # refuse a CPU run that would take longer than this
    measure_iterations: int = 2  # coarse iterations timed for that estimate (after the first: warming up)

    def __post_init__(self):
        for name in ("coarse_iterations", "front_iterations", "widen_iterations", "diffusion_start",
                     "refine_iterations", "preview_every", "surface_resolution", "max_faces"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}")
        for name in ("reference_every", "render_size", "samples", "sd_size", "refine_render_size",
                     "regulariser_points", "measure_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        low, high = self.t_range
        if not 0.0 < low <= high < 1.0:
            raise ValueError(f"t_range must be two fractions 0 < low <= high < 1, got {self.t_range}")
        if not 0.0 < self.foreground_ratio <= 1.0:
            raise ValueError(f"foreground_ratio must be in (0, 1], got {self.foreground_ratio}")
        if self.texture_size and not 64 <= self.texture_size <= 8192:
            raise ValueError(f"texture_size must be in [64, 8192], got {self.texture_size}")
        if self.surface_resolution and self.surface_resolution < 16:
            raise ValueError(f"surface_resolution must be at least 16, got {self.surface_resolution}")

    @classmethod
    def paper(cls, **changes) -> "RefineOptions":
        """The paper's from-scratch schedule (its README's two coarse runs, then the refine
        stage's default): 2000 iterations near the front, 5000 all round, 3000 refining."""
        return replace(cls(), coarse_iterations=7000, front_iterations=2000, widen_iterations=0,
                       diffusion_start=400, refine_iterations=3000, **changes)

    def with_changes(self, **changes) -> "RefineOptions":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

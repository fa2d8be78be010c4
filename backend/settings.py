"""The settings of one image-to-mesh job. Standard library only (shared with Blender)."""

from dataclasses import asdict, dataclass, fields

DEFAULT_RESOLUTION = 256
DEFAULT_THRESHOLD = 25.0
DEFAULT_FOREGROUND_RATIO = 0.85


@dataclass(frozen=True)
class GenerateSettings:
    resolution: int = DEFAULT_RESOLUTION  # marching-cubes grid points per axis
    threshold: float = DEFAULT_THRESHOLD  # density iso-level of the surface
    foreground_ratio: float = DEFAULT_FOREGROUND_RATIO  # share of the frame the object fills
    remove_background: bool = True  # run rembg on images without transparency

    def __post_init__(self):
        if not 8 <= int(self.resolution) <= 1024:
            raise ValueError(f"resolution must be between 8 and 1024, got {self.resolution}")
        if not 0.0 < float(self.foreground_ratio) <= 1.0:
            raise ValueError(
                f"foreground ratio must be in (0, 1], got {self.foreground_ratio}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GenerateSettings":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        return cls(**data)

"""A perspective camera: position, yaw / pitch, vertical field of view and the
clip planes, with OpenGL's conventions (right-handed view space looking down
-z, clip depth -1..1, window depth 0 = near).

Matrices are numpy float32 (4, 4) acting on column vectors (clip = P @ V @ p);
GLSL wants column-major bytes, so upload `m.T.tobytes()` (renderer.py does).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError

MAX_PITCH = math.radians(89.0)      # looking straight up or down makes yaw meaningless


@dataclass(frozen=True)
class Camera:
    """Immutable: moved() and turned() return new cameras (for WASD + mouse free-fly)."""
    position: tuple[float, float, float]
    yaw: float = 0.0                    # radians; 0 looks along -z, +pi/2 along +x (positive turns right)
    pitch: float = 0.0                  # radians; positive looks up
    fov_y: float = math.radians(60.0)   # vertical field of view, radians
    near: float = 0.5                   # clip planes, metres (the depth the PostFX pass linearizes with)
    far: float = 600.0

    def __post_init__(self):
        position = tuple(float(v) for v in np.asarray(self.position, np.float64).reshape(-1))
        if len(position) != 3 or not all(map(math.isfinite, position)):
            raise InputError(f"camera position must be 3 finite numbers, got {self.position!r}")
        object.__setattr__(self, "position", position)
        for name in ("yaw", "pitch", "fov_y", "near", "far"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise InputError(f"camera {name} must be finite, got {value}")
            object.__setattr__(self, name, value)
        if not 0.0 < self.fov_y < math.pi:
            raise InputError(f"camera fov_y must be in (0, pi) radians, got {self.fov_y}")
        if not 0.0 < self.near < self.far:
            raise InputError(f"camera clip planes need 0 < near < far, got near={self.near}, far={self.far}")

    # --- frame ------------------------------------------------------------------------

    @property
    def forward(self) -> np.ndarray:
        cp = math.cos(self.pitch)
        return np.array([math.sin(self.yaw) * cp, math.sin(self.pitch), -math.cos(self.yaw) * cp])

    @property
    def right(self) -> np.ndarray:
        return np.array([math.cos(self.yaw), 0.0, math.sin(self.yaw)])

    @property
    def up(self) -> np.ndarray:
        return np.cross(self.right, self.forward)

    def view_matrix(self) -> np.ndarray:
        r, u, f = self.right, self.up, self.forward
        eye = np.asarray(self.position)
        m = np.eye(4)
        m[0, :3], m[1, :3], m[2, :3] = r, u, -f
        m[:3, 3] = -m[:3, :3] @ eye
        return m.astype(np.float32)

    def projection_matrix(self, aspect: float) -> np.ndarray:
        """GL perspective: view-space z = -near -> clip depth -1, z = -far -> +1."""
        if not (math.isfinite(aspect) and aspect > 0):
            raise InputError(f"aspect ratio must be a finite number > 0, got {aspect}")
        f = 1.0 / math.tan(self.fov_y / 2)
        n, fa = self.near, self.far
        m = np.zeros((4, 4))
        m[0, 0], m[1, 1] = f / aspect, f
        m[2, 2], m[2, 3] = (fa + n) / (n - fa), 2 * fa * n / (n - fa)
        m[3, 2] = -1.0
        return m.astype(np.float32)

    def view_projection(self, aspect: float) -> np.ndarray:
        return (self.projection_matrix(aspect).astype(np.float64) @ self.view_matrix()).astype(np.float32)

    # --- free-fly --------------------------------------------------------------------------

    def moved(self, forward: float = 0.0, right: float = 0.0, up: float = 0.0) -> Camera:
        """Fly: `forward` metres along the view direction, `right` along the horizontal
        right vector, `up` along world +y."""
        p = np.asarray(self.position) + forward * self.forward + right * self.right + up * np.array([0.0, 1.0, 0.0])
        return replace(self, position=tuple(p))

    def turned(self, d_yaw: float = 0.0, d_pitch: float = 0.0) -> Camera:
        """Turn by d_yaw (positive: right) and d_pitch (positive: up) radians; pitch stops
        short of straight up / down, yaw wraps to (-pi, pi]."""
        yaw = math.remainder(self.yaw + d_yaw, 2 * math.pi)
        return replace(self, yaw=yaw, pitch=min(MAX_PITCH, max(-MAX_PITCH, self.pitch + d_pitch)))

    # --- records -----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"position": list(self.position), "yaw": self.yaw, "pitch": self.pitch, "fov_y": self.fov_y,
                "near": self.near, "far": self.far}

    @classmethod
    def from_dict(cls, d: dict) -> Camera:
        return cls(tuple(d["position"]), d["yaw"], d["pitch"], d["fov_y"], d["near"], d["far"])


def linear_depth01(window_depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """Window depth (0..1, GL convention) -> view-space distance normalized as
    (z - near) / (far - near), clamped to [0, 1]: the model file's depth channel,
    the same formula as shaders/pack_input.comp."""
    d = np.asarray(window_depth, np.float64)
    ndc = 2.0 * d - 1.0
    z = 2.0 * near * far / (far + near - ndc * (far - near))
    return np.clip((z - near) / (far - near), 0.0, 1.0).astype(np.float32)

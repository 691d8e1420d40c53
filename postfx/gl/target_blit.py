"""Copying the pass's output into a caller's target: a framebuffer, or a texture wrapped
in one. A caller's texture is blitted into, not written as an image: image stores into a
texture its own filters make incomplete (a mipmap filter, no mipmaps) are dropped, and a
framebuffer attachment needs no completeness."""
from __future__ import annotations

import weakref

import moderngl

from .context import allocating
from .query import ScissorOff


class TargetBlit:
    def __init__(self, ctx: moderngl.Context):
        self.ctx = ctx
        # The caller's last target texture and its framebuffer, kept while the target stays
        # the same (a caller alternating targets pays a framebuffer each time).
        self._texture_fbo: tuple | None = None

    def copy(self, target, source: moderngl.Framebuffer) -> None:
        """Blit `source` into `target` (a Framebuffer or an RGBA8 Texture of its size). A blit
        obeys the scissor test: the caller's scissor must neither crop it nor change."""
        destination = self._framebuffer_of(target) if isinstance(target, moderngl.Texture) else target
        with ScissorOff(self.ctx):
            self.ctx.copy_framebuffer(destination, source)

    def _framebuffer_of(self, texture: moderngl.Texture) -> moderngl.Framebuffer:
        if self._texture_fbo is not None and self._texture_fbo[0]() is texture:
            return self._texture_fbo[1]
        self.release()
        with allocating(self.ctx, "a framebuffer for the target texture"):
            framebuffer = self.ctx.framebuffer(color_attachments=[texture])
        self._texture_fbo = (weakref.ref(texture), framebuffer)
        return framebuffer

    def release(self) -> None:
        if self._texture_fbo is not None:
            self._texture_fbo[1].release()
            self._texture_fbo = None

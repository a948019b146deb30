"""Data utilities: stratified and grouped splits, and seedable image augmentation.

The augmenter works on whole batches at once, in NumPy, and plugs into
``Sequential.fit(augment=...)``: ``fit`` calls it as ``augment(x_batch, rng)`` with a
generator derived from ``fit``'s seed, so augmented runs are reproducible.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import as_rng, check_choice, check_float, check_int

__all__ = ["stratified_split", "group_split", "ImageAugmenter"]


def _check_test_size(test_size: Any, n: int, owner: str) -> int:
    if isinstance(test_size, float) and 0 < test_size < 1:
        k = int(round(test_size * n))
    else:
        k = check_int(test_size, "test_size", minimum=1, owner=owner)
    if not 1 <= k < n:
        raise ValueError(f"{owner}: `test_size` must leave both parts non-empty: asked for {k} of {n} samples")
    return k


def stratified_split(y: Any, test_size: float | int, seed: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` with each class represented in proportion.

    Parameters
    ----------
    y : array of int, shape (n,)
        Class ids.
    test_size : int or float
        Number of test samples, or a fraction in (0, 1). Per-class counts are rounded by
        largest remainder, so the total is exact.
    seed : int or Generator

    Returns
    -------
    train, test : ndarray of int
        Sorted, disjoint index arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from npnet.data import stratified_split
    >>> y = np.repeat([0, 1, 2], 10)
    >>> train, test = stratified_split(y, test_size=6, seed=0)
    >>> np.bincount(y[test]).tolist(), len(train)
    ([2, 2, 2], 24)
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"stratified_split: `y` must be class ids of shape (n,), received shape {y.shape}")
    k = _check_test_size(test_size, y.size, "stratified_split")
    rng = as_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * (k / y.size)
    take = np.floor(exact).astype(int)
    rest = k - take.sum()
    order = np.lexsort((rng.random(classes.size), -(exact - take)))
    take[order[:rest]] += 1
    test = []
    for c, t in zip(classes, take):
        idx = np.flatnonzero(y == c)
        test.append(rng.choice(idx, size=t, replace=False))
    test_idx = np.sort(np.concatenate(test))
    mask = np.ones(y.size, dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask), test_idx


def group_split(groups: Any, test_size: float | int, seed: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` such that no group (for example a writer) is in both.

    Whole groups are drawn at random until the test part is as close as possible to
    ``test_size`` samples.

    Examples
    --------
    >>> import numpy as np
    >>> from npnet.data import group_split
    >>> writers = np.repeat(np.arange(10), 3)
    >>> train, test = group_split(writers, test_size=6, seed=0)
    >>> len(test), set(writers[train]) & set(writers[test])
    (6, set())
    """
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(f"group_split: `groups` must have shape (n,), received shape {groups.shape}")
    k = _check_test_size(test_size, groups.size, "group_split")
    rng = as_rng(seed)
    ids, counts = np.unique(groups, return_counts=True)
    if ids.size < 2:
        raise ValueError("group_split: need at least two groups")
    order = rng.permutation(ids.size)
    chosen: list[Any] = []
    total = 0
    for i in order:
        if total >= k:
            break
        if abs(total + counts[i] - k) <= abs(total - k) or not chosen:
            chosen.append(ids[i])
            total += counts[i]
    if len(chosen) == ids.size:
        chosen.pop()
    test_mask = np.isin(groups, chosen)
    return np.flatnonzero(~test_mask), np.flatnonzero(test_mask)


class ImageAugmenter:
    r"""Random affine (and optionally elastic) distortions of image batches, vectorized.

    Each image gets its own rotation, zoom and translation. Every output pixel is read
    from the source at the inverse-transformed position, with bilinear or nearest
    interpolation; positions outside the image read ``fill_value``.

    Parameters
    ----------
    rotation_range : float, default 0
        Maximum rotation in degrees; angles are uniform in ``[-r, r]``.
    width_shift_range, height_shift_range : float, default 0
        Maximum shift as a fraction of the width / height.
    zoom_range : float or (low, high), default 0
        Zoom factors uniform in ``[1 - z, 1 + z]`` (or ``[low, high]``); > 1 enlarges.
    elastic_alpha : float, default 0
        Strength of a smooth random displacement field, in pixels (0 disables it).
    elastic_grid : int, default 4
        The displacement field is drawn on a ``grid x grid`` lattice and interpolated.
    interpolation : {"bilinear", "nearest"}
    fill_value : float, default 0
        Value of pixels that come from outside the image (Chinese-MNIST's background is 0).
    image_shape : tuple (H, W) or (H, W, C), optional
        Lets the augmenter take flat batches of shape ``(n, H*W*C)`` and return them flat.

    Examples
    --------
    >>> import numpy as np
    >>> from npnet.data import ImageAugmenter
    >>> aug = ImageAugmenter(width_shift_range=0.25)
    >>> x = np.zeros((2, 8, 8), dtype="float32"); x[:, 4, 4] = 1
    >>> out = aug(x, np.random.default_rng(0))
    >>> out.shape, out.dtype
    ((2, 8, 8), dtype('float32'))
    """

    def __init__(self, rotation_range: float = 0.0, width_shift_range: float = 0.0, height_shift_range: float = 0.0,
                 zoom_range: Any = 0.0, elastic_alpha: float = 0.0, elastic_grid: int = 4,
                 interpolation: str = "bilinear", fill_value: float = 0.0,
                 image_shape: tuple[int, ...] | None = None) -> None:
        owner = "ImageAugmenter"
        self.rotation_range = check_float(rotation_range, "rotation_range", low=0.0, high=180.0, owner=owner)
        self.width_shift_range = check_float(width_shift_range, "width_shift_range", low=0.0, high=1.0, owner=owner)
        self.height_shift_range = check_float(height_shift_range, "height_shift_range", low=0.0, high=1.0, owner=owner)
        if isinstance(zoom_range, (tuple, list)):
            if len(zoom_range) != 2:
                raise ValueError(f"{owner}: `zoom_range` must be a float or a pair (low, high), received {zoom_range!r}")
            lo = check_float(zoom_range[0], "zoom_range[0]", low=0.0, low_inclusive=False, owner=owner)
            hi = check_float(zoom_range[1], "zoom_range[1]", low=lo, owner=owner)
            self.zoom_range: Any = (lo, hi)
        else:
            z = check_float(zoom_range, "zoom_range", low=0.0, high=1.0, high_inclusive=False, owner=owner)
            self.zoom_range = z
        self._zoom = self.zoom_range if isinstance(self.zoom_range, tuple) else (1 - self.zoom_range, 1 + self.zoom_range)
        self.elastic_alpha = check_float(elastic_alpha, "elastic_alpha", low=0.0, owner=owner)
        self.elastic_grid = check_int(elastic_grid, "elastic_grid", minimum=2, owner=owner)
        self.interpolation = check_choice(interpolation, "interpolation", ["bilinear", "nearest"], owner=owner)
        self.fill_value = check_float(fill_value, "fill_value", owner=owner)
        if image_shape is not None:
            if not isinstance(image_shape, (tuple, list)):
                raise TypeError(f"{owner}: `image_shape` must be a tuple (H, W) or (H, W, C), received {image_shape!r}")
            image_shape = tuple(check_int(s, "image_shape", minimum=1, owner=owner) for s in image_shape)
            if len(image_shape) not in (2, 3):
                raise ValueError(f"{owner}: `image_shape` must be (H, W) or (H, W, C), received {image_shape!r}")
        self.image_shape = image_shape

    def get_config(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("rotation_range", "width_shift_range", "height_shift_range", "zoom_range",
                                               "elastic_alpha", "elastic_grid", "interpolation", "fill_value",
                                               "image_shape")}

    def __repr__(self) -> str:
        return f"ImageAugmenter({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"

    @staticmethod
    def _upsample_matrix(grid: int, size: int) -> np.ndarray:
        # Linear interpolation weights from `grid` lattice points to `size` pixels.
        pos = np.linspace(0, grid - 1, size)
        lo = np.clip(np.floor(pos).astype(int), 0, grid - 2)
        frac = pos - lo
        m = np.zeros((size, grid), dtype=np.float32)
        m[np.arange(size), lo] = 1 - frac
        m[np.arange(size), lo + 1] = frac
        return m

    def _as_images(self, x: Any) -> tuple[np.ndarray, tuple | None]:
        x = np.asarray(x)
        flat_shape = None
        if self.image_shape is not None and x.ndim == 2:
            flat_shape = x.shape
            x = x.reshape((x.shape[0],) + self.image_shape)
        if x.ndim not in (3, 4):
            raise ValueError(
                f"ImageAugmenter: expected images of shape (n, H, W) or (n, H, W, C), received shape {x.shape}; "
                "for flat batches pass image_shape=(H, W)"
            )
        return x, flat_shape

    def __call__(self, x: np.ndarray, rng: Any = None) -> np.ndarray:
        """Return a randomly distorted copy of the batch ``x`` (same shape; float dtype kept,
        integer input becomes float32)."""
        rng = as_rng(rng)
        images, _ = self._as_images(x)
        n, h, w = images.shape[:3]
        rotation = rng.uniform(-self.rotation_range, self.rotation_range, size=n)
        zoom = rng.uniform(self._zoom[0], self._zoom[1], size=n)
        shift_y = rng.uniform(-self.height_shift_range, self.height_shift_range, size=n) * h
        shift_x = rng.uniform(-self.width_shift_range, self.width_shift_range, size=n) * w
        elastic = None
        if self.elastic_alpha > 0:
            g = self.elastic_grid
            elastic = rng.uniform(-1, 1, size=(2, n, g, g)) * self.elastic_alpha
        return self.apply(x, rotation, zoom, shift_y, shift_x, elastic)

    def apply(self, x: Any, rotation: Any = 0.0, zoom: Any = 1.0, shift_y: Any = 0.0, shift_x: Any = 0.0,
              elastic: np.ndarray | None = None) -> np.ndarray:
        """Apply given transforms (one value per image, or one for all): the deterministic core.

        Parameters
        ----------
        x : ndarray of shape (n, H, W) or (n, H, W, C)
        rotation : float or array of shape (n,)
            Degrees, counter-clockwise on the displayed image.
        zoom : float or array of shape (n,)
            Scale factor about the image centre (> 1 enlarges).
        shift_y, shift_x : float or array of shape (n,)
            Translation in pixels (down, right).
        elastic : ndarray of shape (2, n, g, g), optional
            Coarse displacement field in pixels (rows, columns), interpolated to full size.
        """
        x, flat_shape = self._as_images(x)
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        n, h, w = x.shape[:3]
        f32 = np.float32
        # Rows grow downwards, so a counter-clockwise turn on screen is a negative angle here.
        theta = -np.deg2rad(np.broadcast_to(np.asarray(rotation, dtype=np.float64), (n,))).astype(f32)
        zoom = np.broadcast_to(np.asarray(zoom, dtype=f32), (n,))
        ty = np.broadcast_to(np.asarray(shift_y, dtype=f32), (n,))
        tx = np.broadcast_to(np.asarray(shift_x, dtype=f32), (n,))
        channels = x.shape[3] if x.ndim == 4 else 1
        ws = self._workspace(n, h, w, channels, dtype)
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        dy = (np.arange(h, dtype=f32) - f32(cy))[None, :, None]
        dx = (np.arange(w, dtype=f32) - f32(cx))[None, None, :]
        cos = (np.cos(theta) / zoom)[:, None, None]
        sin = (np.sin(theta) / zoom)[:, None, None]
        # Inverse map: source = R(-theta) / zoom @ (target - centre - shift) + centre.
        # Large temporaries live in a reused workspace: fresh multi-megabyte arrays
        # would cost more in page faults than the arithmetic itself.
        dyt = dy - ty[:, None, None]
        dxt = dx - tx[:, None, None]
        src_y, src_x, tmp = ws["src_y"], ws["src_x"], ws["tmp"]
        np.multiply(cos, dyt, out=src_y)
        np.multiply(sin, dxt, out=tmp)
        src_y -= tmp
        src_y += f32(cy)
        np.multiply(sin, dyt, out=src_x)
        np.multiply(cos, dxt, out=tmp)
        src_x += tmp
        src_x += f32(cx)
        if elastic is not None:
            coarse = np.asarray(elastic, dtype=f32)
            g = coarse.shape[-1]
            uh, uw = self._upsample_matrix(g, h), self._upsample_matrix(g, w)
            np.matmul(uh @ coarse[0], uw.T, out=tmp)
            src_y += tmp
            np.matmul(uh @ coarse[1], uw.T, out=tmp)
            src_x += tmp
        # The padded source: a two-pixel border of fill (set once) around the current
        # images, so that clipped out-of-range reads return the fill.
        xp = ws["padded"]
        xp[:, 2:h + 2, 2:w + 2, :] = x.reshape(n, h, w, channels)
        hp, wp = h + 4, w + 4
        itype = ws["rows"].dtype
        r, c = ws["rows"], ws["cols"]
        out = np.empty((n, h, w, channels), dtype=dtype)
        if self.interpolation == "nearest":
            np.rint(src_y, out=tmp)
            np.clip(tmp, -1, h, out=tmp)
            np.copyto(r, tmp, casting="unsafe")
            np.rint(src_x, out=tmp)
            np.clip(tmp, -1, w, out=tmp)
            np.copyto(c, tmp, casting="unsafe")
            r += 2
            r *= wp
            r += c + 2
            r += (np.arange(n, dtype=itype) * (hp * wp))[:, None, None]
            np.take(xp.reshape(-1, channels), r, axis=0, out=out)
        else:
            # One gather per output pixel: each source position holds its 2x2 neighbourhood.
            quad = ws["quad"]
            np.copyto(quad[:, :, :, 0], xp[:, :-1, :-1])
            np.copyto(quad[:, :, :, 1], xp[:, :-1, 1:])
            np.copyto(quad[:, :, :, 2], xp[:, 1:, :-1])
            np.copyto(quad[:, :, :, 3], xp[:, 1:, 1:])
            fy, fx = ws["fy"], ws["fx"]
            np.floor(src_y, out=tmp)
            np.subtract(src_y, tmp, out=fy[..., 0])
            np.clip(tmp, -2, h, out=tmp)
            np.copyto(r, tmp, casting="unsafe")
            np.floor(src_x, out=tmp)
            np.subtract(src_x, tmp, out=fx[..., 0])
            np.clip(tmp, -2, w, out=tmp)
            np.copyto(c, tmp, casting="unsafe")
            # Clipped to [-2, h]: a neighbourhood that starts outside lies wholly in the border.
            r += 2
            r *= wp - 1
            r += c
            r += (np.arange(n, dtype=itype) * ((hp - 1) * (wp - 1)) + 2)[:, None, None]
            q = ws["q"]
            if channels == 1 and dtype == np.float32:
                # Gather each 16-byte neighbourhood as one complex128: a 1-D take is the fast path.
                np.take(quad.reshape(-1, 4).view(np.complex128)[:, 0], r, out=q.reshape(n, h, w, 4).view(np.complex128)[..., 0])
            else:
                np.take(quad.reshape(-1, 4, channels), r, axis=0, out=q)  # (n, h, w, 4, C)
            top, bottom = ws["top"], ws["bottom"]
            np.subtract(q[..., 1, :], q[..., 0, :], out=top)
            top *= fx
            top += q[..., 0, :]
            np.subtract(q[..., 3, :], q[..., 2, :], out=bottom)
            bottom *= fx
            bottom += q[..., 2, :]
            bottom -= top
            bottom *= fy
            np.add(top, bottom, out=out)
        out = out.reshape(x.shape)
        return out.reshape(flat_shape) if flat_shape is not None else out

    def _workspace(self, n: int, h: int, w: int, channels: int, dtype: np.dtype) -> dict[str, np.ndarray]:
        key = (n, h, w, channels, np.dtype(dtype).str)
        cache = self.__dict__.setdefault("_buffers", {})
        if key not in cache:
            if len(cache) >= 2:  # full batches and the last, smaller one
                cache.pop(next(iter(cache)))
            itype = np.int32 if n * (h + 4) * (w + 4) < 2**31 else np.int64
            f32 = np.float32
            padded = np.full((n, h + 4, w + 4, channels), self.fill_value, dtype=dtype)
            cache[key] = {
                "src_y": np.empty((n, h, w), f32), "src_x": np.empty((n, h, w), f32), "tmp": np.empty((n, h, w), f32),
                "rows": np.empty((n, h, w), itype), "cols": np.empty((n, h, w), itype),
                "fy": np.empty((n, h, w, 1), dtype), "fx": np.empty((n, h, w, 1), dtype),
                "padded": padded, "quad": np.empty((n, h + 3, w + 3, 4, channels), dtype),
                "q": np.empty((n, h, w, 4, channels), dtype),
                "top": np.empty((n, h, w, channels), dtype), "bottom": np.empty((n, h, w, channels), dtype),
            }
        return cache[key]

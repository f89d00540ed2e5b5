"""The radio channel: log-distance path loss, spatially correlated shadowing, fast fading, loss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
SHADOW_COMPONENTS = 12


@dataclass(slots=True, frozen=True)
class RadioParams:
    """Channel parameters (``[radio]`` in a scenario)."""

    path_loss_exponent: float = 2.2
    """``n`` of the log-distance model."""
    shadowing_sigma_db: float = 4.0
    """Standard deviation of shadowing (shelves, bodies), constant in time at a place."""
    shadowing_wavelength_m: float = 6.0
    """Typical size of a shadowing patch."""
    fading_sigma_db: float = 5.0
    """Standard deviation of fast fading, independent for every packet."""
    packet_loss: float = 0.10
    """Probability that a receiver misses a packet."""
    sensitivity_dbm: float = -95.0
    """Weakest signal a receiver decodes."""
    receiver_height_m: float = 2.6
    """Height of receivers."""
    tag_height_m: float = 1.0
    """Height of carried and mounted tags."""


class Channel:
    """RSSI of packets from positions to receivers; deterministic for a seed."""

    def __init__(self, params: RadioParams, receivers_xy: F64, rng: np.random.Generator) -> None:
        self.p = params
        self.rx = np.asarray(receivers_xy, dtype=np.float64)
        n_rx = len(self.rx)
        k = 2 * np.pi / max(params.shadowing_wavelength_m, 0.1)
        angles = rng.uniform(0, 2 * np.pi, (n_rx, SHADOW_COMPONENTS))
        scales = rng.uniform(0.5, 1.5, (n_rx, SHADOW_COMPONENTS)) * k
        self._kx = np.cos(angles) * scales
        self._ky = np.sin(angles) * scales
        self._phase = rng.uniform(0, 2 * np.pi, (n_rx, SHADOW_COMPONENTS))
        self._amp = params.shadowing_sigma_db * np.sqrt(2.0 / SHADOW_COMPONENTS)
        self._dz2 = (params.receiver_height_m - params.tag_height_m) ** 2

    def distance(self, xy: F64) -> F64:
        """3-D distance from each position (n, 2) to each receiver: (n, receivers)."""
        dx = xy[:, None, 0] - self.rx[None, :, 0]
        dy = xy[:, None, 1] - self.rx[None, :, 1]
        return np.asarray(np.sqrt(dx * dx + dy * dy + self._dz2), dtype=np.float64)

    def shadowing(self, xy: F64) -> F64:
        """Shadowing in dB at each position for each receiver: (n, receivers)."""
        arg = (
            xy[:, None, None, 0] * self._kx[None]
            + xy[:, None, None, 1] * self._ky[None]
            + self._phase[None]
        )
        return np.asarray(self._amp * np.cos(arg).sum(axis=2), dtype=np.float64)

    def mean_rssi(self, xy: F64, tx_1m: F64) -> F64:
        """Mean received power (path loss and shadowing, no fading): (n, receivers)."""
        d = np.maximum(self.distance(xy), 0.1)
        return np.asarray(
            tx_1m[:, None] - 10.0 * self.p.path_loss_exponent * np.log10(d) + self.shadowing(xy),
            dtype=np.float64,
        )

    def sample(self, xy: F64, tx_1m: F64, rng: np.random.Generator) -> tuple[F64, F64]:
        """(rssi, heard) for one packet from each position: fading and loss applied."""
        mean = self.mean_rssi(xy, tx_1m)
        rssi = mean + rng.normal(0.0, self.p.fading_sigma_db, mean.shape)
        heard = (rng.random(mean.shape) >= self.p.packet_loss) & (rssi >= self.p.sensitivity_dbm)
        return np.round(rssi), heard.astype(np.float64)

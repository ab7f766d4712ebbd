"""A camera simulator on real sockets, so drivers, demo, tests and benchmark need no hardware.

It plays Hikvision, Dahua, EDIMAX, XRC, MJPEG and generic cameras with their
real paths, auth schemes (Basic, Digest with nonces and nc, query
parameters) and error shapes, and injects faults on demand. See
docs/simulator.md.
"""

from capture.simulator.camera import SimulatedCamera, SimulatorConfigError
from capture.simulator.faults import Faults
from capture.simulator.server import Simulator, SimulatorError

__all__ = ["Faults", "SimulatedCamera", "Simulator", "SimulatorConfigError", "SimulatorError"]

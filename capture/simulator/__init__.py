"""A camera simulator on real sockets, so drivers, demo, tests and benchmark need no hardware.

It plays Hikvision, Dahua, EDIMAX, XRC, MJPEG and generic cameras with their
real paths, auth schemes (Basic, Digest with nonces and nc, query
parameters) and error shapes, and injects faults on demand. See
docs/simulator.md.

Throughput (`python -m capture.simulator.measure`, one camera, 640x480
pictures of ~30 KB, raw keep-alive clients in other processes, 2-CPU VM under
load): ~3,500 snapshots/s without auth and ~2,500/s with Digest MD5 on one
connection, ~0.3 ms per request - several times the 600/s the service's
benchmark needs, so the simulator is not the bottleneck.
"""

from capture.simulator.camera import SimulatedCamera, SimulatorConfigError
from capture.simulator.faults import Faults
from capture.simulator.server import Simulator, SimulatorError

__all__ = ["Faults", "SimulatedCamera", "Simulator", "SimulatorConfigError", "SimulatorError"]

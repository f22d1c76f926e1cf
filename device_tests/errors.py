"""Errors of the device layer: one base type (`DeviceError`), a subclass per failure the user can act on."""

from __future__ import annotations

from banana_sdk.errors import BananaError


class DeviceError(BananaError):
    """Anything wrong between the host and a device; the message says what to do next."""


class AdbUnavailable(DeviceError):
    """The `adb` binary or the adb server cannot be used."""


class NoDevice(DeviceError):
    """No device, or not the one asked for, is attached."""


class DeviceDisconnected(DeviceError):
    """The device went away (unplugged, killed, rebooted) while we were talking to it."""


class CommandMayHaveRun(DeviceDisconnected):
    """The connection dropped during a command that is not repeated blindly (e.g. `am start`); the device is back,
    and the command may or may not have run."""


class DeviceCommandError(DeviceError):
    """A command on the device failed (non-zero exit or an error message)."""


class StorageFull(DeviceError):
    """The device has not enough free space for what we push."""


class AppNotInstalled(DeviceError):
    """The sample app that implements the runner contract is not installed."""


class WrongAbi(DeviceError):
    """The device's CPU ABI cannot run the app or binary we would use."""


class RunnerError(DeviceError):
    """The on-device runner failed, timed out or wrote an invalid result."""


class Interrupted(RunnerError):
    """The user stopped the run (Ctrl-C); what was measured so far is kept."""


class ContractError(RunnerError):
    """Extras or a result file that break the runner contract (docs/DESIGN.md section 6)."""


class ReportError(DeviceError):
    """A run file that cannot be read or rendered."""


class SimulatorError(DeviceError):
    """The simulated device could not start or was configured wrongly."""

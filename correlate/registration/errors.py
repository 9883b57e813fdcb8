"""The error raised for inputs the registration cannot work with."""


class RegistrationError(ValueError):
    """Stacks, voxel sizes or a transform the registration cannot use."""

"""The one error type bad loadgen input raises.

``ProfileError`` names the field (``components.disk.block_size_kb``) or the
file and line (``trace.csv:12``) that is wrong, so an operator can fix a
profile without reading code. The CLI turns it into exit code 2 before any
worker starts.
"""


class ProfileError(ValueError):
    """A profile, pattern or trace that cannot be used.

    Parameters
    ----------
    field : str
        Dotted path of the offending field, or ``path:line`` for a file.
    message : str
        What is wrong and, where possible, what would be accepted.
    """

    def __init__(self, field, message):
        self.field = field
        self.message = message
        super().__init__('%s: %s' % (field, message))

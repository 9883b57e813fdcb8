"""The ``pairscope`` command line, one module per group of commands.

* ``main``: the application and its entry point, ``info``, ``snap``,
  ``acquire``, ``demo``, ``fiducials`` and ``relocate``;
* ``enhance``: ``train``, ``evaluate`` and ``enhance`` (the model commands);
* ``pairs``: ``pairs build``, ``pairs acquire``, ``pairs list`` and ``pairs show``;
* ``clean``: ``clean``; ``gui``: ``gui``;
* ``acquire_display``: plan table, progress bars and summary of an acquisition;
* ``common``: consoles and the error handling every command shares.

The modules only parse options and print; the work is done in
``acquire.workflows`` and the libraries.
"""

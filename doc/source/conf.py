"""Sphinx configuration of the nova-shadow documentation.

``tox -e docs`` (``sphinx-build -W -b html doc/source doc/build/html``)
builds it; every warning is an error.  The configuration reference
(``configuration.rst``) is generated from the options themselves through
oslo.config's ``show-options`` directive over the ``oslo.config.opts``
entry points in setup.cfg, so the package must be installed.
"""

project = 'nova-shadow'
copyright = 'nova-shadow developers'
author = 'nova-shadow developers'

extensions = [
    'oslo_config.sphinxext',
]

master_doc = 'index'
source_suffix = {'.rst': 'restructuredtext'}
exclude_patterns = []
pygments_style = 'sphinx'
html_theme = 'alabaster'
html_title = 'nova-shadow'
html_static_path = []

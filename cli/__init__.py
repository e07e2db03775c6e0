"""The commands of ``train_cli.py``, one module per job: ``parser`` (every flag), ``train``,
``evaluate`` (eval, scores), ``export`` (export, pack), ``segment``, ``deploy`` (deploy-space,
campaign), and ``common`` (what they share). ``train_cli.py`` stays the entry point."""

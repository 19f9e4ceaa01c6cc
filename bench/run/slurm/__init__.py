"""--executor slurm: cluster profiles (profile), job arrays through submitit (submit), and what SLURM knows of
them, followed until they end or cancelled (watch)."""

import sys

from resshift_jax.parity.runner import main

sys.exit(main())

import sys

from tests.realnova.novalab.cli import main

sys.exit(main())

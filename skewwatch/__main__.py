import sys

from skewwatch.cli import main

sys.exit(main())

"""`python -m distill_audit` (also what `accelerate launch -m distill_audit` runs)."""

from distill_audit.cli.main import main

if __name__ == "__main__":
    main()

from autoresearch_portable.cli import main

main()

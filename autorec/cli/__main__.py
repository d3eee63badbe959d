from autorec.cli import main

main()

"""The roof: the ``tinymim`` command (``main``) and the quickstart that runs the whole product.

Nothing below imports this package. The rooms (compress/, export/, serve/) each keep their commands' argparse
glue beside their code; ``main.COMMANDS`` names those modules and imports only the one that runs.
"""

"""The monitor API's routes, one module per area; each ``add_*_routes(app, ctx, guards)`` adds its own."""

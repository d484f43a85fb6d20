from valis_desktop.api import hookimpl


@hookimpl
def register_providers(register, something_unknown):  # type: ignore[no-untyped-def]
    pass

"""What the oneDNN kernel tests share: skip them on a wheel without oneDNN (with the reason),
and give every test the conv/matmul backend it started with back."""
import pytest

from ppddpm.models import conv as conv_mod
from ppddpm.models import onednn

requires_onednn = pytest.mark.skipif(not onednn.available()[0],
                                     reason="this Paddle wheel has no oneDNN: "
                                     + onednn.available()[1])


@pytest.fixture(autouse=True)
def restore_backend():
    before = conv_mod._backend
    yield
    conv_mod._backend = before

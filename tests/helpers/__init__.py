"""Machinery the tests share: fake providers that speak real wire protocols, worker processes,
stub activities under the real names, and readers of histories and metrics. Test modules
import from here and never from each other."""

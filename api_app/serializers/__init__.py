"""What the API reads and writes, translated to and from JSON. Nothing here decides: rules
live in `queries_app.services`, `queries_app.access` and `notifications.endpoints`. One
module per resource, as the views (`errors` holds the one shape of every error)."""

from .accounts import AccountSerializer, KindParamSerializer, KindSerializer
from .containers import (
    BoardContainerSerializer,
    BoardFilterSerializer,
    ContainerDetailSerializer,
    HistoryEntrySerializer,
)
from .errors import ErrorSerializer
from .queries import (
    AppointmentSerializer,
    ChangeRowSerializer,
    ChangeSerializer,
    CheckSerializer,
    ContainerFilterSerializer,
    ContainerSerializer,
    InfoSerializer,
    QueryDetailSerializer,
    QuerySerializer,
    ResultCountsSerializer,
    StartQuerySerializer,
)
from .webhooks import (
    DeliveryAttemptSerializer,
    SecretSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWriteSerializer,
)

__all__ = [
    "AccountSerializer",
    "AppointmentSerializer",
    "BoardContainerSerializer",
    "BoardFilterSerializer",
    "ChangeRowSerializer",
    "ChangeSerializer",
    "CheckSerializer",
    "ContainerDetailSerializer",
    "ContainerFilterSerializer",
    "ContainerSerializer",
    "DeliveryAttemptSerializer",
    "ErrorSerializer",
    "HistoryEntrySerializer",
    "InfoSerializer",
    "KindParamSerializer",
    "KindSerializer",
    "QueryDetailSerializer",
    "QuerySerializer",
    "ResultCountsSerializer",
    "SecretSerializer",
    "StartQuerySerializer",
    "WebhookDeliverySerializer",
    "WebhookEndpointCreatedSerializer",
    "WebhookEndpointSerializer",
    "WebhookEndpointWriteSerializer",
]

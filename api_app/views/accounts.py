"""/api/v1/accounts/ and /api/v1/kinds/: what a caller may start queries for, and with what."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from queries_app import access
from queries_app.registry import all_kinds

from ..serializers import AccountSerializer, KindSerializer
from .common import errors


@extend_schema(tags=["accounts"], responses={200: AccountSerializer(many=True), **errors()})
class AccountList(generics.ListAPIView):
    """The E-Modal accounts the caller may see (their own; staff with “Can view query”:
    all), and whether the caller may start queries for each."""

    serializer_class = AccountSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet:
        return access.visible_accounts(self.request.user)


@extend_schema(tags=["queries"], responses={200: KindSerializer(many=True), **errors()})
class KindList(APIView):
    """The query kinds and the parameters each takes."""

    def get(self, request: Request) -> Response:
        return Response(KindSerializer(all_kinds(), many=True).data)

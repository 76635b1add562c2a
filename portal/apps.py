from django.contrib.admin.apps import AdminConfig


class PortalAdminConfig(AdminConfig):
    """Django's admin with the portal's site (`portal.admin_site`)."""

    default_site = "portal.admin_site.PortalAdminSite"

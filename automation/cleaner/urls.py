from __future__ import annotations

from django.urls import path

from automation.cleaner import views

app_name = "cleaner"

urlpatterns = [
    path("", views.today, name="today"),
    path("<int:task_id>/", views.task, name="task"),
    path("<int:task_id>/problem/", views.problem, name="problem"),
    path("<int:task_id>/<str:to>/", views.move, name="move"),
]
